"""The report's timeline: jobs in flight and completions over the run, as inline SVG.

Pure: a `Timeline` in, markup out. The run is cut into `COLUMNS` equal spans; each shows
the most jobs in flight during it (so a short peak is never averaged away) and the
completions so far. The API's refusals (a 429 at the account's cap) are red marks at the
number of jobs in flight when they came, with a dashed line at the highest such number —
where the adaptive admission met the account's cap; without refusals in the ledger, the
dashed line is where the run held while jobs waited, when that is below `--concurrency`
(what was asked, a dotted line). Numbers only reach the markup through `_n`, text
through `html.escape`.
"""

from __future__ import annotations

import bisect
import html
from collections.abc import Sequence

from runner.views.summary import human_seconds
from runner.views.timeline import Timeline

COLUMNS = 480
WIDTH, HEIGHT = 960, 230
LEFT, RIGHT, TOP, BOTTOM = 44, 56, 14, 28
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def bucket_peaks(
    series: Sequence[tuple[float, int]], start: float, end: float, count: int
) -> list[int]:
    """The most jobs in flight during each of `count` equal spans of [start, end], from a
    step series of (time, value after it); before its first point the value is 0."""
    points = sorted(series, key=lambda p: p[0])
    span = (end - start) / count if end > start else 1.0
    peaks: list[int] = []
    current, i = 0, 0
    for column in range(count):
        limit = start + (column + 1) * span
        peak = current
        while i < len(points) and (points[i][0] < limit or column == count - 1):
            current = points[i][1]
            peak = max(peak, current)
            i += 1
        peaks.append(peak)
    return peaks


def cumulative(times: Sequence[float], start: float, end: float, count: int) -> list[int]:
    """How many of `times` fall at or before the end of each of `count` equal spans."""
    ordered = sorted(times)
    span = (end - start) / count if end > start else 1.0
    ends = (start + (column + 1) * span for column in range(count - 1))
    return [*(bisect.bisect_right(ordered, end_) for end_ in ends), len(ordered)]


def _x(column: float) -> float:
    return LEFT + column * PLOT_W / COLUMNS


def _y(value: float, top: float) -> float:
    return TOP + PLOT_H - (value / top) * PLOT_H if top else TOP + PLOT_H


def _area(peaks: Sequence[int], top: int) -> str:
    steps = [f"M{_n(_x(0))},{_n(_y(0, top))}"]
    for column, value in enumerate(peaks):
        y = _n(_y(value, top))
        steps.append(f"L{_n(_x(column))},{y}L{_n(_x(column + 1))},{y}")
    steps.append(f"L{_n(_x(COLUMNS))},{_n(_y(0, top))}Z")
    return "".join(steps)


def _line(values: Sequence[int], top: int) -> str:
    return "M" + "L".join(f"{_n(_x(c + 1))},{_n(_y(v, top))}" for c, v in enumerate(values))


def _axes(top: int, done_top: int, wall: float) -> list[str]:
    parts = [f'<line class="axis" x1="{LEFT}" y1="{TOP + PLOT_H}" x2="{LEFT + PLOT_W}" '
             f'y2="{TOP + PLOT_H}"/>']  # fmt: skip
    for k in range(5):
        x = LEFT + k * PLOT_W / 4
        parts.append(f'<text class="tick" x="{_n(x)}" y="{HEIGHT - 8}" text-anchor="middle">'
                     f"{_e(human_seconds(wall * k / 4))}</text>")  # fmt: skip
    for value in sorted({0, top // 2, top}):
        y = _n(_y(value, top))
        parts.append(f'<text class="tick" x="{LEFT - 6}" y="{y}" dy=".32em" '
                     f'text-anchor="end">{value}</text>')  # fmt: skip
    for value in sorted({0, done_top // 2, done_top}):
        y = _n(_y(value, done_top))
        parts.append(f'<text class="tick right" x="{LEFT + PLOT_W + 6}" y="{y}" dy=".32em">'
                     f"{value}</text>")  # fmt: skip
    return parts


def _level(value: int, top: int, css: str, label: str) -> str:
    y = _n(_y(value, top))
    return (f'<line class="{css}" x1="{LEFT}" y1="{y}" x2="{LEFT + PLOT_W}" y2="{y}"/>'
            f'<text class="{css}-label" x="{LEFT + 4}" y="{y}" dy="-.35em">{_e(label)}</text>')


def _refusal_marks(line: Timeline, start: float, wall: float, top: int) -> str:
    marks = []
    for at, flying in line.refusals:
        x = LEFT + (at - start) / wall * PLOT_W if wall else LEFT
        y = _y(flying, top)
        marks.append(f"M{_n(x)},{_n(y - 7)}l-4,-7h8Z")
    return f'<path class="refusal" d="{"".join(marks)}"/>' if marks else ""


def timeline_svg(line: Timeline, *, concurrency: int | None = None) -> str:
    """The timeline of a run as one `<svg>` element (a sentence instead when nothing ran)."""
    if line.start is None or line.end is None or not line.in_flight:
        return '<p class="muted">Nothing has been submitted yet.</p>'
    start, wall = line.start, line.end - line.start
    peaks = bucket_peaks(line.in_flight, start, line.end, COLUMNS)
    done = cumulative(line.completions, start, line.end, COLUMNS)
    top = max(1, line.peak_in_flight, concurrency or 0, line.cap_seen or 0)
    done_top = max(1, len(line.completions))
    parts = [
        f'<svg class="timeline" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="timeline-title"><title id="timeline-title">Jobs in flight (area, '
        f"left axis) and completions so far (line, right axis) over {_e(human_seconds(wall))}"
        "</title>",
        *_axes(top, done_top, wall),
        f'<path class="flight" d="{_area(peaks, top)}"/>',
        f'<path class="done" d="{_line(done, done_top)}"/>',
    ]
    if concurrency:
        parts.append(_level(concurrency, top, "asked", f"--concurrency {concurrency}"))
    if line.cap_seen is not None:
        label = (f"account cap: the API refused one more at {line.cap_seen} in flight "
                 f"({len(line.refusals)} times)")
        parts.append(_level(line.cap_seen, top, "cap", label))
    elif concurrency and line.held is not None and line.held < concurrency:
        label = (f"held at {line.held} in flight while jobs waited (asked {concurrency}): "
                 "the account's cap, or a per-model or rate limit")
        parts.append(_level(line.held, top, "cap", label))
    parts.append(_refusal_marks(line, start, wall, top))
    parts.append("</svg>")
    return "".join(parts)
