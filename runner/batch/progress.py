"""What a running batch reports about itself: counters drawn from job transitions, and
summaries as pure functions.

The job book hands every transition to `Progress.observe`; the CLI takes `snapshot()`s and
renders them (a live display on a terminal, plain periodic lines otherwise) with
`progress_line`.

Rate and ETA come from the jobs' learned durations (`forecast`), not from the completions
seen lately: a batch finishing in bursts (one listing wakes many jobs) would otherwise swing
between "80/min" and "ETA ?". The durations are the ones the cadence learns, per class
(model, requested `duration`), seeded from the folder's earlier runs.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass

from runner.batch.admission import Gauge
from runner.batch.control import Control
from runner.batch.following import job_class
from runner.domain import JobState
from runner.ledger import Downloaded, Event, JobRecord, PollFailed, Submitted, TimedOut
from runner.polling import Durations

JobClass = Hashable  # (model, requested duration), as the cadence learns them


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The batch at one moment."""

    total: int
    states: dict[str, int]
    completions_per_minute: float | None  # None: nothing learned yet
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
    retried: int = 0  # failures this run tried again automatically (not in `failed`)
    stopping: bool = False  # a second Ctrl-C: stopping now, nothing left to ask for
    budget: float | None = None  # --budget, counted over the folder
    spent_before: float = 0.0  # CU the folder's earlier runs spent

    @property
    def budget_left(self) -> float | None:
        """CU still allowed by --budget (never below 0), or None without one."""
        if self.budget is None:
            return None
        return max(self.budget - self.spent_before - self.cost, 0.0)


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
        # For the forecast (`configure`): what the jobs take, the jobs still to submit by
        # class, the jobs at the API (class, since when, POST outcome unknown).
        self.durations = Durations()
        self.places = 8
        self.settle = 30.0
        self.budget: float | None = None
        self.spent_before = 0.0
        self._to_submit: Counter[JobClass] = Counter()
        self._in_flight: dict[str, tuple[JobClass, float, bool]] = {}
        self._failed_now: set[str] = set()
        self.retried = 0

    def configure(
        self, *, durations: Durations, places: int, settle: float,
        to_submit: Iterable[JobClass],
        in_flight: Iterable[tuple[str, JobClass, bool, float]] = (),
        budget: float | None = None, spent_before: float = 0.0,
    ) -> None:
        """What the forecast starts from: learned durations, `--concurrency`, `--settle`,
        the classes of the jobs this run will submit, and the jobs already at the API
        (id, class, POST outcome unknown, seconds since it was posted); the budget line's
        `--budget` and earlier spend."""
        now = self.clock()
        self.durations = durations
        self.places = max(places, 1)
        self.settle = settle
        self._to_submit = Counter(to_submit)
        self._in_flight = {job: (cls, now - max(age, 0.0), unknown)
                           for job, cls, unknown, age in in_flight}
        self.budget = budget
        self.spent_before = spent_before

    def start(self, states: Iterable[JobState]) -> None:
        """Where the run's jobs start (done or failed before is not news)."""
        self.states.update(s.value for s in states)

    def moved(self, before: JobState, after: JobState) -> None:
        """A job moved elsewhere (another runner of a shared batch, before this one took it
        over): its count moves, nothing else is news."""
        self.states[before.value] -= 1
        self.states[after.value] += 1

    def observe(self, old: JobRecord | None, new: JobRecord, event: Event) -> None:
        """One transition of the book: move the job's count; count what the event says."""
        before = old.state if old is not None else JobState.PENDING
        now = self.clock()
        if before is not new.state:
            self.states[before.value] -= 1
            self.states[new.state.value] += 1
        self._follow(new, before, now)
        if isinstance(event, Submitted):
            self.cost += event.cost or 0.0
            self.adopted += event.reconciled
        elif isinstance(event, Downloaded):
            self.downloaded += 1
        elif isinstance(event, TimedOut | PollFailed):
            self.unfollowed += 1

    def _follow(self, new: JobRecord, before: JobState, now: float) -> None:
        """The forecast's and the summary's bookkeeping for one transition."""
        cls = job_class(new.model, new.params or {}) if new.model is not None else None
        if new.in_flight and cls is not None:
            known = self._in_flight.get(new.id)
            if known is None:  # it left the jobs to submit (or was tried again)
                if before is JobState.FAILED and new.id in self._failed_now:
                    self.retried += 1
                    self._failed_now.discard(new.id)
                elif self._to_submit[cls] > 0:
                    self._to_submit[cls] -= 1
            # The API's job starts at its jobId (a lost POST's wait starts at its intent).
            since = now if known is None or (known[2] and not new.unresolved_intent) \
                else known[1]
            self._in_flight[new.id] = (cls, since, new.unresolved_intent)
        elif self._in_flight.pop(new.id, None) is not None and new.state is JobState.PENDING \
                and cls is not None:
            self._to_submit[cls] += 1  # refused for now (429): it waits for a place again
        if new.state is JobState.FAILED and before is not JobState.FAILED:
            self._failed_now.add(new.id)
        if new.state in _FINISHED and before not in _FINISHED and cls is not None \
                and new.run_seconds is not None:
            self.durations.add(cls, new.run_seconds)

    def forecast(self) -> tuple[float | None, float | None]:
        """(completions per second, seconds to the end) from the learned durations."""
        now = self.clock()
        gauge = self.gauge() if self.gauge is not None else None
        places = gauge.limit if gauge is not None and gauge.limit > 0 else self.places
        pending = self._to_submit if self.control.submissions_allowed else Counter()
        return forecast(self.durations, pending,
                        [(cls, now - since, unknown) for cls, since, unknown
                         in self._in_flight.values()],
                        places=places, settle=self.settle)

    def note(self, message: str) -> None:
        """A line worth showing once (adoptions, halts, drain)."""
        self.notes.add(message)

    def unshown_notes(self) -> list[str]:
        """Notes no display has printed yet (oldest first), now marked as shown."""
        return self.notes.unshown()

    def snapshot(self) -> Snapshot:
        now = self.clock()
        rate, eta_seconds = self.forecast()
        halt = self.control.halt
        return Snapshot(
            total=self.total, states=dict(self.states),
            completions_per_minute=None if rate is None else rate * 60,
            eta_seconds=eta_seconds, failures=self.control.failures,
            adopted=self.adopted, downloaded=self.downloaded, unfollowed=self.unfollowed,
            cost=self.cost, draining=self.control.draining,
            halt=halt.value if halt is not None else None, elapsed=now - self._started,
            admission=self.gauge() if self.gauge is not None else None,
            retried=self.retried, stopping=self.control.stopping, budget=self.budget,
            spent_before=self.spent_before,
        )


_FINISHED = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED)


def forecast(
    durations: Durations, to_submit: Mapping[JobClass, int],
    in_flight: Iterable[tuple[JobClass, float, bool]], *, places: int, settle: float,
) -> tuple[float | None, float | None]:
    """(completions per second, seconds to the end) of a batch, from learned durations.

    `to_submit` counts the jobs still to post per class; `in_flight` holds (class, age,
    POST outcome unknown) per job at the API. A job at the API needs what its class
    typically takes minus its age (at least a tenth of it: it is late, not done); a lost
    POST first waits out `settle` (the time it is looked for) and then runs whole. The jobs
    to submit share `places` places: the end is the later of the longest job in flight and
    all the work spread over the places. A class never seen takes the median of the
    classes in play that were seen (else of every class seen); with nothing learned yet
    both are None (`?`), not a guess.
    """
    in_flight = list(in_flight)
    classes = {*(c for c, n in to_submit.items() if n > 0), *(c for c, _, _ in in_flight)}
    if not classes:
        return None, 0.0  # nothing left to wait for
    known = sorted(d for cls in classes if (d := durations.typical(cls)) is not None) or \
        sorted(d for cls in durations.classes() if (d := durations.typical(cls)) is not None)
    if not known:
        return None, None
    fallback = known[len(known) // 2]

    def typical(cls: JobClass) -> float:
        found = durations.typical(cls)
        return found if found is not None else fallback

    longest = 0.0
    work = 0.0  # seconds of place still needed
    whole = 0.0  # what the remaining jobs take each, start to end (for the rate)
    jobs = 0
    for cls, age, unknown in in_flight:
        d = typical(cls)
        left = max(settle - age, 0.0) + d if unknown else max(d - age, d / 10)
        longest = max(longest, left)
        work += left
        whole += d
        jobs += 1
    queued = 0
    for cls, count in to_submit.items():
        if count > 0:
            work += count * typical(cls)
            whole += count * typical(cls)
            queued += count
    jobs += queued
    places = max(places, 1)
    eta_seconds = max(longest, work / places) if queued else longest
    mean = whole / jobs
    return min(places, jobs) / mean if mean > 0 else None, eta_seconds


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
        f"[{format_duration(snap.elapsed)}] {counts} | {format_rate(snap)}"
        f" | ETA {format_duration(snap.eta_seconds)}"
    )
    if snap.retried:
        line += f" | {retried_text(snap.retried)}"
    if snap.admission is not None and snap.admission.capped:
        line += f" | {account_cap(snap.admission)}"
    if snap.adopted:
        line += f" | adopted {snap.adopted}"
    if snap.unfollowed:
        line += f" | timed out {snap.unfollowed} (polled again next run)"
    if snap.cost or snap.budget is not None:
        line += f" | {cost_text(snap)}"
    ending = ending_text(snap)
    if ending is not None:
        line += f" | {ending}"
    return line


def ending_text(snap: Snapshot) -> str | None:
    """Why submissions stopped (halt, second signal, drain), or None while they go on."""
    if snap.halt:
        return f"HALTED: {snap.halt}; finishing jobs in flight"
    if snap.stopping:
        return STOPPED
    if snap.draining:
        return DRAINING
    return None


DRAINING = "DRAINING: no new submissions (Ctrl-C again to stop now)"
STOPPED = "STOPPED: every jobId is in the ledger; run again to resume"


def format_rate(snap: Snapshot) -> str:
    """`12.0/min` (expected, from the learned durations), `?/min` before any is known, and
    `0.0/min` once nothing is left to finish."""
    rate = snap.completions_per_minute
    if rate is None:
        return "0.0/min" if snap.eta_seconds == 0 else "?/min"
    return f"{rate:.1f}/min"


def retried_text(retried: int) -> str:
    """The failures tried again automatically: not failed jobs, and said so."""
    return f"{retried} failure(s) retried automatically"


def cost_text(snap: Snapshot) -> str:
    """`120 CU spent` and, with --budget, `880 CU left of 1000`."""
    text = f"{snap.cost:g} CU spent"
    left = snap.budget_left
    if left is not None:
        text += f", {left:g} CU left of {snap.budget:g}"
    return text


def account_cap(gauge: Gauge) -> str:
    """`8 in flight (account cap; asked 40)`: the account, not --concurrency, holds it."""
    return f"{gauge.in_flight} in flight (account cap; asked {gauge.asked})"
