"""The report's job cards as data: one JSON object per job, in one escaped `<script>` block.

The page does not hold 10,000 pre-rendered cards; its script draws them from this block as
they scroll into view. Everything in it is user or API text (ids, prompts, params, errors),
so the block is written to be inert inside HTML: `<`, `>` and `&` are JSON `\\u` escapes
(a prompt holding `</script>` or `<!--` cannot end or bend the block) and so are U+2028 and
U+2029. The script reads it with `JSON.parse(textContent)` and puts every value on the page
through `textContent` or a DOM property, never as markup.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from runner.clock import format_iso
from runner.views.jobs import JobView
from runner.views.summary import FailureGroup, failure_reason, human_bytes
from runner.views.timeline import JobTiming, Timeline

_INERT = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                        "\u2028": "\\u2028", "\u2029": "\\u2029"})  # fmt: skip


def script_json(data: Any) -> str:
    """`data` as JSON that can stand between `<script type="application/json">` and
    `</script>` whatever text it holds (see the module's doc)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).translate(_INERT)


def link(path: str) -> str:
    """A file of the folder as a relative URL: percent-encoded, so no path can turn into
    another scheme (`javascript:` becomes `javascript%3A`) or break out of the attribute."""
    return quote(path)


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return format_iso(datetime.fromtimestamp(seconds, UTC))


def card_data(
    view: JobView,
    timing: JobTiming | None,
    posters: Mapping[str, str],
    reasons: Mapping[tuple[str, str | None], int],
) -> dict[str, Any]:
    """One card's data: the view, its timings, its files (with posters where there are),
    and the index of its failure group (-1 for none)."""
    timing = timing or JobTiming()
    videos = [
        {"src": link(a.path), "path": a.path, "size": human_bytes(a.bytes),
         "poster": link(posters[a.path]) if a.path in posters else None}
        for a in view.assets
    ]  # fmt: skip
    wait = timing.submit_to_file
    return {
        "id": view.id, "model": view.model, "state": view.state.value, "prompt": view.prompt,
        "params": dict(view.params), "jobId": view.job_id, "attempt": view.attempt,
        "cost": round(view.cost, 4), "seconds": view.seconds, "error": view.error,
        "hint": view.hint, "next": view.next_reason, "unfollowed": view.unfollowed,
        "submitted": _iso(timing.submitted), "finished": _iso(timing.finished),
        "filed": _iso(timing.filed), "wait": None if wait is None else round(wait, 2),
        "videos": videos,
        "reason": reasons.get((failure_reason(view.error), view.hint), -1)
        if view.state.value == "failed" else -1,
    }  # fmt: skip


def cards_json(
    views: Sequence[JobView],
    timeline: Timeline,
    posters: Mapping[str, str],
    failures: Sequence[FailureGroup],
) -> str:
    """The page's data block: `{"jobs": [card, …]}` in view order, escaped for a script."""
    reasons = {(g.reason, g.hint): n for n, g in enumerate(failures)}
    cards = [card_data(v, timeline.timings.get(v.id), posters, reasons) for v in views]
    return script_json({"jobs": cards})
