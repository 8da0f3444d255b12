"""A job's status as a pure function of the time elapsed since its creation.

Nothing runs in the background: every read computes where the job stands now. A job spends
fixed shares of its drawn duration in each phase of the real sequence
`queued → warming-up → in-progress → finalizing → success`; a failing job fails part-way
through `in-progress`; a canceled job stops where it was when the cancel arrived.
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.simulator.faults import Outcome

TERMINAL = frozenset({"success", "failure", "canceled"})

# (status, share of the duration at which it starts)
PHASES: tuple[tuple[str, float], ...] = (
    ("queued", 0.0),
    ("warming-up", 0.1),
    ("in-progress", 0.25),
    ("finalizing", 0.85),
)
_IN_PROGRESS_START = 0.25
_FINALIZING_START = 0.85
_FAILURE_AT = 0.6
# in-progress carries progress up to this value, finalizing the rest
_PROGRESS_AT_FINALIZING = 0.9


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Where a job stands: status, progress 0..1, and history as (status, seconds) pairs."""

    status: str
    progress: float
    history: tuple[tuple[str, float], ...]

    @property
    def terminal(self) -> bool:
        """True once the job has reached success, failure or canceled."""
        return self.status in TERMINAL

    @property
    def updated(self) -> float:
        """Seconds after creation of the latest transition."""
        return self.history[-1][1]


def end_offset(duration: float, outcome: Outcome) -> float:
    """Seconds after creation at which the job turns terminal on its own."""
    return duration * (_FAILURE_AT if outcome is not Outcome.SUCCESS else 1.0)


def progress_at(duration: float, elapsed: float) -> float:
    """Progress of a running job `elapsed` seconds after creation."""
    if duration <= 0:
        return 1.0
    share = min(max(elapsed / duration, 0.0), 1.0)
    if share < _IN_PROGRESS_START:
        return 0.0
    if share < _FINALIZING_START:
        span = _FINALIZING_START - _IN_PROGRESS_START
        return round(_PROGRESS_AT_FINALIZING * (share - _IN_PROGRESS_START) / span, 4)
    span = 1.0 - _FINALIZING_START
    rest = 1.0 - _PROGRESS_AT_FINALIZING
    return round(_PROGRESS_AT_FINALIZING + rest * (share - _FINALIZING_START) / span, 4)


def _phases_until(duration: float, elapsed: float) -> list[tuple[str, float]]:
    return [(name, share * duration) for name, share in PHASES if share * duration <= elapsed]


def snapshot(
    duration: float, outcome: Outcome, elapsed: float, canceled_at: float | None = None
) -> Snapshot:
    """The job's state `elapsed` seconds after creation (pure; `elapsed` may be anything)."""
    end = end_offset(duration, outcome)
    if canceled_at is not None and canceled_at < end and elapsed >= canceled_at:
        history = [*_phases_until(duration, canceled_at), ("canceled", canceled_at)]
        return Snapshot("canceled", progress_at(duration, canceled_at), tuple(history))
    if elapsed >= end:
        final = "success" if outcome is Outcome.SUCCESS else "failure"
        history = [*_phases_until(duration, end), (final, end)]
        progress = 1.0 if outcome is Outcome.SUCCESS else progress_at(duration, end)
        return Snapshot(final, progress, tuple(history))
    history = _phases_until(duration, max(elapsed, 0.0))
    return Snapshot(history[-1][0], progress_at(duration, elapsed), tuple(history))
