"""The HTML page of a run (`DIR/report.html`): pure functions from views to one string.

One self-contained file that works from `file://` offline: inline CSS and script (their
sources are `report.css` and `report.js` beside this module), no font, no external asset.
The summary, the failures and the timeline are markup made here, every text escaped; the
job cards are drawn by the script from one escaped JSON block as they scroll into view
(`report_cards`), so 10,000 jobs cost one parse, not 10,000 elements and video requests.
Videos and posters are linked by their path relative to the folder; each `<video>` has
`preload="none"`: nothing loads until a person presses play.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from urllib.parse import urlencode

from runner.domain import JobState
from runner.views.jobs import JobView
from runner.views.report_cards import cards_json
from runner.views.report_timeline import timeline_svg
from runner.views.summary import (
    ReportSummary,
    format_cost,
    human_bytes,
    human_seconds,
    summarize,
)
from runner.views.timeline import Timeline


@dataclass(frozen=True, slots=True)
class ReportContext:
    """What the page says besides the jobs: title, when it was written, the run's asked
    `--concurrency` and `--budget` (None: not known or not set), and `live` while a run is
    going and rewrites the page every `refresh` seconds."""

    title: str = "kling-batch report"
    generated_at: str | None = None
    concurrency: int | None = None
    budget: float | None = None
    live: bool = False
    refresh: float = 30.0


@cache
def _static(name: str) -> str:
    return files("runner.views").joinpath(name).read_text(encoding="utf-8")


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _fragment(**values: str) -> str:
    return "#" + urlencode(values)


def _tile(value: str, label: str, href: str | None = None) -> str:
    inner = f"<b>{_e(value)}</b><span>{_e(label)}</span>"
    if href is None:
        return f'<div class="tile">{inner}</div>'
    return f'<a class="tile" href="{_e(href)}">{inner}</a>'


def _spent(s: ReportSummary) -> str:
    if s.budget is None:
        return format_cost(s.total_cost)
    return f"{format_cost(s.total_cost)} of {format_cost(s.budget)}"


def _flight_tiles(s: ReportSummary, asked: int | None) -> list[str]:
    tiles = [_tile(str(s.peak_in_flight), "most jobs in flight")]
    if s.cap_seen is not None:
        tiles.append(_tile(f"{s.cap_seen} ({s.refusals} refusals)", "account cap met"))
    elif asked and s.held is not None and s.held < asked:
        tiles.append(_tile(f"{s.held} of {asked}", "held while jobs waited"))
    return tiles


def _totals_html(s: ReportSummary, asked: int | None) -> str:
    length = f"{s.seconds} s" + (f" +{s.unknown_seconds} unknown" if s.unknown_seconds else "")
    waits = f"{human_seconds(s.p50_submit_to_file)} / {human_seconds(s.p95_submit_to_file)}"
    tiles = [
        _tile(str(s.jobs), "jobs"),
        _tile(_spent(s), "CU spent" + (" of the budget" if s.budget is not None else "")),
        _tile(length, "of video"),
        _tile(f"{s.files} · {human_bytes(s.total_bytes)}", "files"),
        _tile(human_seconds(s.wall_seconds), "wall time"),
        _tile(waits, "submit → file p50 / p95"),
        *_flight_tiles(s, asked),
    ]
    return f'<div class="tiles">{"".join(tiles)}</div>'


def _states_html(s: ReportSummary) -> str:
    tiles = "".join(_tile(str(n), state, _fragment(state=state))
                    for state, n in s.per_state.items())  # fmt: skip
    return f'<h2>By state</h2><div class="tiles">{tiles}</div>'


def _model_row(model: str, counts: Mapping[str, int], cost: float) -> str:
    numbers = [*(counts.get(state.value, 0) for state in JobState), sum(counts.values())]
    cells = "".join(f'<td class="n">{n}</td>' for n in numbers)
    name = f'<a href="{_e(_fragment(model=model))}"><code>{_e(model)}</code></a>'
    return f'<tr><td>{name}</td>{cells}<td class="n">{_e(format_cost(cost))}</td></tr>'


def _models_html(s: ReportSummary) -> str:
    columns = ["model", *(state.value for state in JobState), "jobs", "CU"]
    head = "".join(f"<th>{_e(x)}</th>" for x in columns)
    body = "".join(_model_row(model, counts, s.cost_per_model.get(model, 0.0))
                   for model, counts in s.per_model.items())  # fmt: skip
    return f"<h2>By model</h2><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _failures_html(s: ReportSummary) -> str:
    if not s.failures:
        return ""
    rows = []
    for n, group in enumerate(s.failures):
        show = _fragment(state="failed", reason=str(n))
        examples = ", ".join(group.jobs[:3]) + (" …" if group.count > 3 else "")
        rows.append(
            f'<tr><td class="n"><a href="{_e(show)}">{group.count}</a></td>'
            f'<td class="err">{_e(group.reason)}</td><td class="hint">{_e(group.hint)}</td>'
            f"<td><code>{_e(examples)}</code></td></tr>"
        )
    head = "<tr><th>jobs</th><th>reason</th><th>hint</th><th>for example</th></tr>"
    return (f"<h2>Failures by reason</h2><table><thead>{head}</thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")  # fmt: skip


_LEGEND = (
    '<p class="legend"><i style="background:#c9d7f5;border:1px solid #2457c5"></i>jobs in '
    'flight<i style="background:#17612c"></i>completions so far (right axis)'
    '<i style="background:#c62828"></i>the account\'s cap: refused by the API (429), or '
    "held below --concurrency while jobs waited</p>"
)


def _controls_html(s: ReportSummary) -> str:
    states = "".join(
        f'<label><input type="checkbox" name="state" value="{_e(state)}"> {_e(state)} '
        f"({n})</label>"
        for state, n in s.per_state.items() if n
    )  # fmt: skip
    models = "".join(f'<option value="{_e(m)}">{_e(m)}</option>' for m in s.per_model)
    return (
        '<div class="controls"><input type="search" id="q" placeholder="Search ids and '
        'prompts" aria-label="Search job ids and prompts">'
        f'<span role="group" aria-label="states">{states}</span>'
        f'<select id="model" aria-label="model"><option value="">all models</option>{models}'
        '</select><button type="button" id="clear">clear</button><span id="count"></span></div>'
    )


def _head(context: ReportContext, jobs: int) -> str:
    stamp = f" · written {_e(context.generated_at)}" if context.generated_at else ""
    live = (f' · <span class="live">a run is going: this page is rewritten every '
            f"{context.refresh:g} s — reload to see more</span>" if context.live else "")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(context.title)}</title>\n<style>{_static('report.css')}</style>\n"
        f'</head>\n<body>\n<header><h1>{_e(context.title)}</h1><p class="sub">{jobs} job(s)'
        f"{stamp}{live}</p></header>\n"
    )


def render_report(
    views: Sequence[JobView],
    timeline: Timeline | None = None,
    posters: Mapping[str, str] | None = None,
    context: ReportContext | None = None,
) -> str:
    """The whole page of a run from its job views (`runner.views.job_views`), its
    timeline (`timeline_of` its ledger) and its posters (video path -> poster path)."""
    context = context or ReportContext()
    line = timeline or Timeline()
    summary = summarize(views, line, budget=context.budget)
    data = cards_json(views, line, posters or {}, summary.failures)
    return (
        f"{_head(context, summary.jobs)}"
        f'<section id="summary">{_totals_html(summary, context.concurrency)}{_states_html(summary)}'
        f"{_models_html(summary)}{_failures_html(summary)}</section>\n"
        f'<section id="timeline"><h2>Timeline</h2>'
        f"{timeline_svg(line, concurrency=context.concurrency)}{_LEGEND}</section>\n"
        f'<section id="jobs"><h2>Jobs</h2>{_controls_html(summary)}'
        '<div id="grid" class="grid"></div><div id="more"></div>'
        "<noscript>The job cards need JavaScript; results.csv beside this page lists every "
        "job.</noscript></section>\n"
        f'<script type="application/json" id="jobs-data">{data}</script>\n'
        f"<script>{_static('report.js')}</script>\n</body>\n</html>\n"
    )
