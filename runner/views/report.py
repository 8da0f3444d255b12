"""The HTML page of a run (`DIR/report.html`) and the summaries it shows: pure functions.

The page is one self-contained file: inline CSS, no script, no external asset. Videos are
linked by their path relative to the output folder, so the page plays them whether the
folder is opened from disk or served over HTTP. Every piece of text comes from user input
or the API (prompts, errors, ids) and is escaped.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from runner.domain import JobState
from runner.ledger import AssetRecord
from runner.views.jobs import JobView, state_counts

PROMPT_EXCERPT = 140  # characters of a prompt shown in the table; the rest is in a tooltip


@dataclass(frozen=True, slots=True)
class ReportSummary:
    """Totals over the views. `seconds` counts the video of succeeded jobs of known length
    (their `duration`, else the schema's default); `unknown_seconds` the succeeded jobs
    whose length only the API knows."""

    jobs: int
    per_state: Mapping[str, int]
    per_model: Mapping[str, Mapping[str, int]]
    cost_per_model: Mapping[str, float]
    total_cost: float
    files: int
    total_bytes: int
    seconds: int
    unknown_seconds: int


def summarize(views: Iterable[JobView]) -> ReportSummary:
    """Counts per state and per model (every state listed), cost, files, bytes, seconds."""
    views = list(views)
    per_model: dict[str, Counter[str]] = {}
    cost_per_model: dict[str, float] = {}
    for view in views:
        model = view.model or "(unknown)"
        per_model.setdefault(model, Counter())[view.state.value] += 1
        cost_per_model[model] = cost_per_model.get(model, 0.0) + view.cost
    done = [v for v in views if v.state is JobState.SUCCEEDED]
    files = [a for v in views for a in v.assets]
    return ReportSummary(
        jobs=len(views),
        per_state=state_counts(views),
        per_model={m: dict(c) for m, c in per_model.items()},
        cost_per_model=cost_per_model,
        total_cost=sum(v.cost for v in views),
        files=len(files),
        total_bytes=sum(a.bytes for a in files),
        seconds=sum(v.seconds for v in done if v.seconds is not None),
        unknown_seconds=sum(1 for v in done if v.seconds is None),
    )


def human_bytes(count: int) -> str:
    """Bytes for a person: 1023 B, 1.5 KiB, 12.3 MiB, …"""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _cost(value: float) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def excerpt(text: str | None, limit: int = PROMPT_EXCERPT) -> str:
    """The first `limit` characters of `text` (an ellipsis when cut), whitespace collapsed."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#1d1d1f;
background:#fafafa}
h1{font-size:1.4rem;margin:0 0 .2rem}h2{font-size:1.1rem;margin:2rem 0 .6rem}
.sub{color:#666;margin:0 0 1.2rem}
.cards{display:flex;flex-wrap:wrap;gap:.6rem}
.card{background:#fff;border:1px solid #ddd;border-radius:8px;padding:.5rem .9rem;min-width:7rem}
.card b{display:block;font-size:1.3rem}.card span{color:#666}
table{border-collapse:collapse;background:#fff;width:100%}
th,td{border:1px solid #e2e2e2;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f0f0f0;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
code{font:12px ui-monospace,monospace;word-break:break-all}
.state{display:inline-block;border-radius:4px;padding:0 .4rem;font-weight:600}
.succeeded{background:#d9f2de;color:#17612c}.failed{background:#fbdcdc;color:#8a1c1c}
.canceled{background:#eee;color:#555}.pending{background:#eef1f8;color:#3b4a6b}
.submitted,.running{background:#fff1d1;color:#7a5200}
.hint{color:#666}.err{color:#8a1c1c}
video{width:320px;max-width:100%;background:#000;border-radius:4px;display:block;margin:.2rem 0}
"""


def _card(value: str, label: str) -> str:
    return f'<div class="card"><b>{_e(value)}</b><span>{_e(label)}</span></div>'


def _summary_html(s: ReportSummary) -> str:
    states = "".join(_card(str(n), state) for state, n in s.per_state.items())
    length = f"{s.seconds} s" + (f" (+{s.unknown_seconds} of unknown length)"
                                 if s.unknown_seconds else "")  # fmt: skip
    totals = (_card(str(s.jobs), "jobs") + _card(_cost(s.total_cost), "CU spent")
              + _card(str(s.files), "files") + _card(human_bytes(s.total_bytes), "downloaded")
              + _card(length, "of video"))  # fmt: skip
    return f'<div class="cards">{totals}</div>\n<h2>By state</h2><div class="cards">{states}</div>'


def _model_row(model: str, counts: Mapping[str, int], cost: float) -> str:
    numbers = [*(counts.get(state.value, 0) for state in JobState), sum(counts.values())]
    cells = "".join(f'<td class="n">{n}</td>' for n in numbers)
    return f'<tr><td><code>{_e(model)}</code></td>{cells}<td class="n">{_e(_cost(cost))}</td></tr>'


def _models_html(s: ReportSummary) -> str:
    columns = ["model", *(state.value for state in JobState), "jobs", "CU"]
    head = "".join(f"<th>{_e(x)}</th>" for x in columns)
    body = "".join(
        _model_row(model, counts, s.cost_per_model.get(model, 0.0))
        for model, counts in s.per_model.items()
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _video_html(asset: AssetRecord) -> str:
    src = _e(quote(asset.path))
    size = _e(human_bytes(asset.bytes))
    return (
        f'<div class="file"><video controls preload="metadata" src="{src}"></video>'
        f'<a href="{src}"><code>{_e(asset.path)}</code></a> <span class="hint">{size}</span></div>'
    )


def _problem_html(view: JobView) -> str:
    parts = []
    if view.error:
        parts.append(f'<div class="err">{_e(view.error)}</div>')
    if view.hint:
        parts.append(f'<div class="hint">{_e(view.hint)}</div>')
    return "".join(parts)


def _job_html(view: JobView) -> str:
    prompt = view.prompt or ""
    done = view.state is JobState.SUCCEEDED
    videos = "".join(_video_html(a) for a in view.assets) if done else ""
    cells = [
        f"<code>{_e(view.id)}</code>",
        f"<code>{_e(view.model)}</code>",
        f'<span class="state {_e(view.state.value)}">{_e(view.state.value)}</span>',
        f'<span title="{_e(prompt)}">{_e(excerpt(prompt))}</span>',
        f"<code>{_e(view.job_id)}</code>",
        _problem_html(view),
        str(view.attempt),
        videos,
    ]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


_JOB_COLUMNS = ("job", "model", "state", "prompt", "jobId", "error / hint", "attempts", "video")


def _jobs_html(views: Iterable[JobView]) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in _JOB_COLUMNS)
    body = "\n".join(_job_html(v) for v in views)
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


def render_report(
    views: Sequence[JobView],
    *,
    title: str = "kling-batch report",
    generated_at: str | None = None,
) -> str:
    """The whole page for a run: summary, counts per model, and a row (with its videos) per
    job, from the run's job views (`runner.views.jobs.job_views`)."""
    summary = summarize(views)
    stamp = f" — generated {_e(generated_at)}" if generated_at else ""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f'<h1>{_e(title)}</h1>\n<p class="sub">{summary.jobs} job(s){stamp}</p>\n'
        f"{_summary_html(summary)}\n<h2>By model</h2>\n{_models_html(summary)}\n"
        f"<h2>Jobs</h2>\n{_jobs_html(views)}\n</body>\n</html>\n"
    )
