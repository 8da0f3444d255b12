// kling-batch report: the job cards, drawn from the page's one JSON block as they scroll
// into view, with search (ids and prompts), filters by state and model, and the view kept
// in the URL's fragment (#q=…&state=failed,canceled&model=…&reason=N) so it can be shared.
// Every piece of job data reaches the page through textContent or a DOM property, never as
// markup: a prompt is data.
(function () {
  "use strict";
  var BATCH = 40;            // cards drawn at once
  var AHEAD = 1600;          // pixels below the viewport kept drawn ahead of scrolling
  var data = JSON.parse(document.getElementById("jobs-data").textContent);
  var jobs = data.jobs;
  var grid = document.getElementById("grid");
  var more = document.getElementById("more");
  var search = document.getElementById("q");
  var modelSelect = document.getElementById("model");
  var stateBoxes = Array.prototype.slice.call(document.querySelectorAll("input[name=state]"));
  var count = document.getElementById("count");
  var haystacks = jobs.map(function (j) {
    return [j.id, j.jobId || "", j.prompt || ""].join("\n").toLowerCase();
  });
  var matches = [];
  var drawn = 0;
  var reason = null;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // An id (job id, jobId, model) broken only after - _ . / : never inside a word.
  var BREAK_AFTER = /([-_.\/])/;
  function idNode(tag, cls, text) {
    var node = el(tag, cls);
    node.title = String(text);
    String(text).split(BREAK_AFTER).forEach(function (part) {
      if (!part) return;
      node.appendChild(document.createTextNode(part));
      if (BREAK_AFTER.test(part)) node.appendChild(document.createElement("wbr"));
    });
    return node;
  }

  function idRow(dl, label, value) {
    if (value === undefined || value === null || value === "") return;
    dl.appendChild(el("dt", null, label));
    dl.appendChild(idNode("dd", "ident", value));
  }

  function row(dl, label, value, cls) {
    if (value === undefined || value === null || value === "") return;
    dl.appendChild(el("dt", null, label));
    dl.appendChild(el("dd", cls || null, value));
  }

  function clock(iso) {
    return iso ? iso.replace("T", " ").replace(/\.\d+Z$|Z$/, "") + " UTC" : null;
  }

  function media(card, j) {
    if (!j.videos.length) {
      card.appendChild(el("div", "novideo", j.state === "succeeded" ? "no file yet" : j.state));
      return;
    }
    j.videos.forEach(function (v) {
      var video = document.createElement("video");
      video.controls = true;
      video.preload = "none";
      if (v.poster) video.poster = v.poster;
      video.src = v.src;
      card.appendChild(video);
    });
  }

  function details(body, j) {
    var dl = el("dl");
    idRow(dl, "model", j.model);
    idRow(dl, "jobId", j.jobId);
    row(dl, "attempt", j.attempt || null);
    row(dl, "cost", j.cost ? j.cost + " CU" : null);
    row(dl, "video", j.seconds ? j.seconds + " s" : null);
    row(dl, "submitted", clock(j.submitted));
    row(dl, "finished", clock(j.finished));
    row(dl, "submit → file", j.wait !== null ? j.wait.toFixed(1) + " s" : null);
    row(dl, "error", j.error, "err");
    row(dl, "hint", j.hint, "hint");
    row(dl, "next run", j.next);
    body.appendChild(dl);
    var params = el("details");
    params.appendChild(el("summary", null, "params"));
    params.appendChild(el("pre", null, JSON.stringify(j.params, null, 2)));
    body.appendChild(params);
    j.videos.forEach(function (v) {
      body.appendChild(el("div", "files", v.path + " · " + v.size));
    });
  }

  function card(j) {
    var node = el("article", "card");
    node.dataset.id = j.id;
    media(node, j);
    var body = el("div", "body");
    var head = el("div", "head");
    head.appendChild(idNode("span", "id", j.id));
    head.appendChild(el("span", "state " + j.state, j.unfollowed ? j.state + " (unfollowed)" : j.state));
    body.appendChild(head);
    if (j.prompt) {
      var prompt = el("p", "prompt", j.prompt);
      prompt.title = "click to show all";
      prompt.addEventListener("click", function () { prompt.classList.toggle("open"); });
      body.appendChild(prompt);
    }
    details(body, j);
    node.appendChild(body);
    return node;
  }

  function drawMore() {
    var end = Math.min(drawn + BATCH, matches.length);
    if (end <= drawn) return;
    var batch = document.createDocumentFragment();
    for (var i = drawn; i < end; i++) batch.appendChild(card(jobs[matches[i]]));
    grid.appendChild(batch);
    drawn = end;
    // Still short of the fold (a tall screen, a wide grid)? Draw on after this frame.
    if (drawn < matches.length && more.getBoundingClientRect().top < window.innerHeight + AHEAD) {
      window.requestAnimationFrame(drawMore);
    }
  }

  function selected() {
    var states = stateBoxes.filter(function (b) { return b.checked; }).map(function (b) { return b.value; });
    return { q: search.value.trim().toLowerCase(), states: states, model: modelSelect.value };
  }

  function apply() {
    var f = selected();
    var allStates = f.states.length === 0 || f.states.length === stateBoxes.length;
    matches = [];
    for (var i = 0; i < jobs.length; i++) {
      var j = jobs[i];
      if (!allStates && f.states.indexOf(j.state) < 0) continue;
      if (f.model && j.model !== f.model) continue;
      if (reason !== null && j.reason !== reason) continue;
      if (f.q && haystacks[i].indexOf(f.q) < 0) continue;
      matches.push(i);
    }
    grid.textContent = "";
    drawn = 0;
    count.textContent = matches.length + " of " + jobs.length + " jobs" +
      (reason !== null ? " · one failure reason (clear to see all)" : "");
    drawMore();
  }

  function toHash() {
    var f = selected();
    var parts = new URLSearchParams();
    if (f.q) parts.set("q", search.value.trim());
    if (f.states.length && f.states.length !== stateBoxes.length) parts.set("state", f.states.join(","));
    if (f.model) parts.set("model", f.model);
    if (reason !== null) parts.set("reason", String(reason));
    var hash = parts.toString();
    history.replaceState(null, "", hash ? "#" + hash : location.pathname + location.search);
  }

  function fromHash() {
    var parts = new URLSearchParams(location.hash.replace(/^#/, ""));
    search.value = parts.get("q") || "";
    var states = (parts.get("state") || "").split(",").filter(Boolean);
    stateBoxes.forEach(function (b) { b.checked = states.indexOf(b.value) >= 0; });
    var model = parts.get("model") || "";
    modelSelect.value = Array.prototype.some.call(modelSelect.options, function (o) {
      return o.value === model;
    }) ? model : "";
    var r = parts.get("reason");
    reason = r !== null && /^\d+$/.test(r) ? Number(r) : null;
    apply();
  }

  var typing = null;
  search.addEventListener("input", function () {
    window.clearTimeout(typing);
    typing = window.setTimeout(function () { toHash(); apply(); }, 120);
  });
  stateBoxes.forEach(function (b) { b.addEventListener("change", function () { toHash(); apply(); }); });
  modelSelect.addEventListener("change", function () { toHash(); apply(); });
  document.getElementById("clear").addEventListener("click", function () {
    history.replaceState(null, "", location.pathname + location.search);
    fromHash();
  });
  window.addEventListener("hashchange", fromHash);
  new IntersectionObserver(function (entries) {
    if (entries.some(function (e) { return e.isIntersecting; })) drawMore();
  }, { rootMargin: "0px 0px " + AHEAD + "px 0px" }).observe(more);
  fromHash();
  // For measuring (the README's time to first cards): when the first cards were drawn.
  if (window.performance && performance.mark) performance.mark("kling-batch:first-cards");
  document.body.dataset.ready = "1";
})();
