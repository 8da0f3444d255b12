"""What a running batch reports about itself: counters drawn from job transitions, and
summaries as pure functions.

The job book hands every transition to `Progress.observe`; the CLI takes `snapshot()`s and
renders them (a live display on a terminal, plain periodic lines otherwise) with
`progress_line`.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from runner.batch.admission import Gauge
from runner.batch.control import Control
from runner.domain import JobState
from runner.ledger import Downloaded, Event, JobRecord, PollFailed, Submitted, TimedOut


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
    unfollowed: int
    cost: float
    draining: bool
    halt: str | None
    elapsed: float
    admission: Gauge | None = None


class Notes:
    """Lines worth showing once (adoptions, halts, drain), for whichever display runs."""

    def __init__(self) -> None:
        self.messages: deque[str] = deque(maxlen=50)
        self.total = 0
        self.shown = 0  # how many notes a display has printed

    def add(self, message: str) -> None:
        self.messages.append(message)
        self.total += 1

    def unshown(self) -> list[str]:
        """Notes no display has printed yet (oldest first), now marked as shown."""
        fresh = min(self.total - self.shown, len(self.messages))
        self.shown = self.total
        return list(self.messages)[len(self.messages) - fresh:] if fresh > 0 else []


class Progress:
    """Counters drawn from the job transitions the book reports (one event loop: no locks).

    Display only: what decides (halts, drain, the failure count) is the `Control`, which
    the snapshot reads.
    """

    def __init__(
        self, *, total: int, control: Control, clock: Callable[[], float],
        notes: Notes | None = None,
    ) -> None:
        self.total = total
        self.notes = notes or Notes()
        self.control = control
        self.clock = clock
        self.states: Counter[str] = Counter()
        self.adopted = 0
        self.downloaded = 0
        self.unfollowed = 0
        self.cost = 0.0
        self.gauge: Callable[[], Gauge] | None = None  # set once admission exists
        self._started = clock()
        self._done_times: deque[float] = deque(maxlen=200)

    def start(self, states: Iterable[JobState]) -> None:
        """Where the run's jobs start (done or failed before is not news)."""
        self.states.update(s.value for s in states)

    def observe(self, old: JobRecord | None, new: JobRecord, event: Event) -> None:
        """One transition of the book: move the job's count; count what the event says."""
        before = old.state if old is not None else JobState.PENDING
        if before is not new.state:
            self.states[before.value] -= 1
            self.states[new.state.value] += 1
            if new.state in _FINISHED:
                self._done_times.append(self.clock())
        if isinstance(event, Submitted):
            self.cost += event.cost or 0.0
            self.adopted += event.reconciled
        elif isinstance(event, Downloaded):
            self.downloaded += 1
        elif isinstance(event, TimedOut | PollFailed):
            self.unfollowed += 1

    def note(self, message: str) -> None:
        """A line worth showing once (adoptions, halts, drain)."""
        self.notes.add(message)

    def unshown_notes(self) -> list[str]:
        """Notes no display has printed yet (oldest first), now marked as shown."""
        return self.notes.unshown()

    def snapshot(self) -> Snapshot:
        now = self.clock()
        rate = completion_rate(list(self._done_times), now)
        done = sum(self.states[s.value] for s in _FINISHED)
        halt = self.control.halt
        return Snapshot(
            total=self.total, states=dict(self.states), completions_per_minute=rate * 60,
            eta_seconds=eta(self.total - done, rate), failures=self.control.failures,
            adopted=self.adopted, downloaded=self.downloaded, unfollowed=self.unfollowed,
            cost=self.cost, draining=self.control.draining,
            halt=halt.value if halt is not None else None, elapsed=now - self._started,
            admission=self.gauge() if self.gauge is not None else None,
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
    if snap.admission is not None and snap.admission.capped:
        line += f" | {account_cap(snap.admission)}"
    if snap.adopted:
        line += f" | adopted {snap.adopted}"
    if snap.unfollowed:
        line += f" | timed out {snap.unfollowed} (polled again next run)"
    if snap.cost:
        line += f" | {snap.cost:g} CU"
    if snap.halt:
        line += f" | HALTED: {snap.halt}; finishing jobs in flight"
    elif snap.draining:
        line += " | DRAINING: no new submissions (Ctrl-C again to stop now)"
    return line


def account_cap(gauge: Gauge) -> str:
    """`8 in flight (account cap; asked 40)`: the account, not --concurrency, holds it."""
    return f"{gauge.in_flight} in flight (account cap; asked {gauge.asked})"
