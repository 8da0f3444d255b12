"""What a running batch reports about itself: counters in the shell, summaries as pure functions.

The scheduler updates a `Progress`; the CLI takes `snapshot()`s and renders them (a live
display on a terminal, plain periodic lines otherwise) with `progress_line`.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from runner.domain import JobState


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The batch at one moment."""

    total: int
    states: dict[str, int]
    completions_per_minute: float
    eta_seconds: float | None
    failures: int
    adopted: int
    downloaded: int
    cost: float
    draining: bool
    halt: str | None
    elapsed: float


@dataclass
class Progress:
    """Mutable counters the scheduler updates (one event loop: no locking needed)."""

    total: int
    clock: Callable[[], float]
    states: Counter[str] = field(default_factory=Counter)
    failures: int = 0
    adopted: int = 0
    downloaded: int = 0
    cost: float = 0.0
    draining: bool = False
    halt: str | None = None
    messages: deque[str] = field(default_factory=lambda: deque(maxlen=50))
    notes_total: int = 0
    notes_shown: int = 0  # how many notes a display has printed
    _started: float = 0.0
    _done_times: deque[float] = field(default_factory=lambda: deque(maxlen=200))

    def __post_init__(self) -> None:
        self._started = self.clock()

    def move(self, old: JobState | None, new: JobState) -> None:
        """A job changed state; terminal states reached in this run count as completions
        (and failures), not the states jobs start the run in."""
        if old is not None:
            self.states[old.value] -= 1
        self.states[new.value] += 1
        if old is None or old == new:
            return  # where a job starts this run (done or failed before) is not news
        if new in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED):
            self._done_times.append(self.clock())
        if new is JobState.FAILED:
            self.failures += 1

    def note(self, message: str) -> None:
        """A line worth showing once (adoptions, halts, drain)."""
        self.messages.append(message)
        self.notes_total += 1

    def unshown_notes(self) -> list[str]:
        """Notes no display has printed yet (oldest first), now marked as shown."""
        fresh = min(self.notes_total - self.notes_shown, len(self.messages))
        self.notes_shown = self.notes_total
        return list(self.messages)[len(self.messages) - fresh:] if fresh > 0 else []

    def snapshot(self) -> Snapshot:
        now = self.clock()
        rate = completion_rate(list(self._done_times), now)
        done = sum(self.states[s.value] for s in _FINISHED)
        return Snapshot(
            total=self.total, states=dict(self.states), completions_per_minute=rate * 60,
            eta_seconds=eta(self.total - done, rate), failures=self.failures,
            adopted=self.adopted, downloaded=self.downloaded, cost=self.cost,
            draining=self.draining, halt=self.halt, elapsed=now - self._started,
        )


_FINISHED = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED)


def completion_rate(done_times: list[float], now: float, window: float = 300.0) -> float:
    """Completions per second over the last `window` seconds (0 when too few to tell)."""
    recent = [t for t in done_times if now - t <= window]
    if len(recent) < 2:
        return 0.0
    span = max(now - recent[0], 1.0)  # no wild rates from a burst in the first second
    return len(recent) / span


def eta(remaining: int, rate: float) -> float | None:
    """Seconds until `remaining` jobs are done at `rate` per second; None if unknown."""
    if remaining <= 0:
        return 0.0
    return remaining / rate if rate > 0 else None


def format_duration(seconds: float | None) -> str:
    """`1h02m`, `3m05s`, `42s`, or `?`."""
    if seconds is None:
        return "?"
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def progress_line(snap: Snapshot) -> str:
    """One plain line: jobs per state, rate, ETA, failures, and drain/halt."""
    order = [s.value for s in JobState]
    counts = " ".join(f"{name} {snap.states.get(name, 0)}" for name in order)
    line = (
        f"[{format_duration(snap.elapsed)}] {counts} | {snap.completions_per_minute:.1f}/min"
        f" | ETA {format_duration(snap.eta_seconds)} | failures {snap.failures}"
    )
    if snap.adopted:
        line += f" | adopted {snap.adopted}"
    if snap.cost:
        line += f" | {snap.cost:g} CU"
    if snap.halt:
        line += f" | HALTED: {snap.halt}; finishing jobs in flight"
    elif snap.draining:
        line += " | DRAINING: no new submissions (Ctrl-C again to stop now)"
    return line
