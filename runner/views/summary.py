"""What a batch amounts to: totals over its job views and its timeline, pure functions.

`summarize` is the one summary of the report page, the dataset card and their tests:
counts per state and per model, creative units, files, seconds of video, wall time, the
p50/p95 wait from submit to file, and the failures grouped by reason.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from runner.domain import JobState
from runner.views.jobs import JobView, state_counts
from runner.views.timeline import Timeline, percentile

PROMPT_EXCERPT = 140  # characters of a prompt shown where a whole one would not fit

# Ids the API puts in error texts: without them, one cause is one group.
_IDS = re.compile(r"\b(job|asset|upload)_[A-Za-z0-9]+")


@dataclass(frozen=True, slots=True)
class FailureGroup:
    """Failed jobs that share a reason (their error, ids taken out) and a hint."""

    reason: str
    hint: str | None
    count: int
    jobs: tuple[str, ...]  # their ids, in view order


@dataclass(frozen=True, slots=True)
class ReportSummary:
    """Totals over the views. `seconds` counts the video of succeeded jobs of known length
    (their `duration`, else the schema's default); `unknown_seconds` the succeeded jobs
    whose length only the API knows. Times are seconds; None where nothing measured them."""

    jobs: int
    per_state: Mapping[str, int]
    per_model: Mapping[str, Mapping[str, int]]
    cost_per_model: Mapping[str, float]
    total_cost: float
    files: int
    total_bytes: int
    seconds: int
    unknown_seconds: int
    failures: tuple[FailureGroup, ...] = ()
    budget: float | None = None
    wall_seconds: float | None = None
    p50_submit_to_file: float | None = None
    p95_submit_to_file: float | None = None
    refusals: int = 0
    cap_seen: int | None = None
    peak_in_flight: int = 0
    held: int | None = None  # jobs in flight held longest while jobs waited


def failure_reason(error: str | None) -> str:
    """The reason a failure is grouped under: its error, whitespace collapsed, API ids
    replaced by `…` (so one cause over many jobs is one group)."""
    flat = " ".join((error or "").split())
    return _IDS.sub(lambda m: f"{m.group(1)}_…", flat) or "(no error given)"


def failure_groups(views: Iterable[JobView]) -> tuple[FailureGroup, ...]:
    """The failed jobs grouped by (reason, hint), the largest group first."""
    groups: dict[tuple[str, str | None], list[str]] = {}
    for view in views:
        if view.state is JobState.FAILED:
            groups.setdefault((failure_reason(view.error), view.hint), []).append(view.id)
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0][0]))
    return tuple(FailureGroup(reason, hint, len(jobs), tuple(jobs))
                 for (reason, hint), jobs in ordered)  # fmt: skip


def summarize(
    views: Iterable[JobView], timeline: Timeline | None = None, *, budget: float | None = None
) -> ReportSummary:
    """Counts per state and per model (every state listed), cost, files, bytes, seconds,
    failures by reason; with the run's `timeline`, its wall time, waits and refusals."""
    views = list(views)
    per_model: dict[str, Counter[str]] = {}
    cost_per_model: dict[str, float] = {}
    for view in views:
        model = view.model or "(unknown)"
        per_model.setdefault(model, Counter())[view.state.value] += 1
        cost_per_model[model] = cost_per_model.get(model, 0.0) + view.cost
    done = [v for v in views if v.state is JobState.SUCCEEDED]
    files = [a for v in views for a in v.assets]
    line = timeline or Timeline()
    waits = [w for v in done if (w := _wait(line, v.id)) is not None]
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
        failures=failure_groups(views),
        budget=budget,
        wall_seconds=line.wall_seconds,
        p50_submit_to_file=percentile(waits, 50),
        p95_submit_to_file=percentile(waits, 95),
        refusals=len(line.refusals),
        cap_seen=line.cap_seen,
        peak_in_flight=line.peak_in_flight,
        held=line.held,
    )


def _wait(timeline: Timeline, job: str) -> float | None:
    timing = timeline.timings.get(job)
    return timing.submit_to_file if timing else None


def human_bytes(count: int) -> str:
    """Bytes for a person: 1023 B, 1.5 KiB, 12.3 MiB, …"""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def human_seconds(seconds: float | None) -> str:
    """A duration for a person: `0.4 s`, `42 s`, `3 min 05 s`, `2 h 03 min`; `—` for None."""
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def format_cost(value: float) -> str:
    """Creative units as a person reads them: `1,234.5`, `10`, `0.25`."""
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def excerpt(text: str | None, limit: int = PROMPT_EXCERPT) -> str:
    """The first `limit` characters of `text` (an ellipsis when cut), whitespace collapsed."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
