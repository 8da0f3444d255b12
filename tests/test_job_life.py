"""One job's life, cancelled at every await point: no place, reservation or holding leaks,
and a POST that was sent always has its jobId recorded.

The batch's parts (scheduler, submitter, follower, admission, budget, reconciler, job book
and ledger writer) are the real ones; what they call outside the process (the API, the
CDN, the ledger file) are fakes in which every call is one numbered await point, a *gate*.
A first run counts the gates of a scenario; then, for each gate k, a fresh batch runs the
same scenario and is cancelled while it waits at gate k.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from runner.api import DownloadedFile
from runner.batch import (
    Action,
    Admission,
    Budget,
    Control,
    Decision,
    Follower,
    JobBook,
    Progress,
    RateLimiter,
    Scheduler,
    Submitter,
    Withdrawals,
    WorkItem,
    count_failures,
    opening_window,
)
from runner.batch.withdrawals import append_request
from runner.canonical import canonical_json
from runner.domain import (
    JobSpec,
    JobState,
    RemoteJob,
    RemoteStatus,
    SourceLocation,
    Submission,
)
from runner.errors import OutcomeUnknownError, TransientApiError
from runner.ledger import (
    Event,
    Finished,
    Intended,
    LedgerWriter,
    NotSubmitted,
    Outcome,
    Running,
    Submitted,
    replay,
)
from runner.polling import PollPolicy
from runner.reconcile import Reconciler
from tests.helpers.http import FakeTime

MODEL = "model_kling-v3-t2v-4k"
PARAMS = {"prompt": "A lighthouse at dusk", "duration": "5"}


class Gates:
    """Counts await points; the `stop_at`-th one waits until the test has cancelled."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.stop_at = stop_at
        self.passed: list[str] = []
        self.reached = anyio.Event()
        self.release = anyio.Event()

    async def __call__(self, name: str) -> None:
        self.passed.append(name)
        if len(self.passed) == self.stop_at:
            self.reached.set()
            await self.release.wait()  # cancelled here, unless the caller is shielded
        await anyio.lowlevel.checkpoint()


@dataclass
class FakeWorld:
    """The API, CDN and ledger file of one scenario, every call a gate."""

    gates: Gates
    scenario: str
    posts: int = 0
    polls: int = 0
    written: list[Event] = field(default_factory=list)

    async def append_many(self, events: list[Event]) -> None:
        await self.gates("ledger")
        self.written.extend(events)

    def read_events(self) -> Any:
        return iter(())

    async def make_body(self, spec: JobSpec) -> dict[str, Any]:
        await self.gates("upload")
        return dict(spec.params)

    async def price(self, model: str, body: Any) -> float:
        await self.gates("price")
        return 10.0

    async def generate(
        self, model: str, body: Any, *, before_send: Callable[[], None] | None = None
    ) -> Submission:
        if before_send is not None:
            before_send()
        self.posts += 1
        await self.gates("post")
        if self.scenario == "lost answer" and self.posts == 1:
            raise OutcomeUnknownError("connection reset after the request was sent")
        return Submission(self._job(f"job_{self.posts}", "queued"), 10.0)

    async def list_jobs(self, since: str) -> AsyncIterator[RemoteJob]:
        await self.gates("listing")
        yield self._job("job_1", "queued")

    async def get_job(self, job_id: str) -> RemoteJob:
        self.polls += 1
        await self.gates("poll")
        if self.polls == 1:
            return self._job(job_id, "in-progress")
        if self.scenario == "transient failure" and job_id == "job_1":
            return self._job(job_id, "failure", error="temporary capacity problem")
        return self._job(job_id, "success", assets=("asset_1",))

    async def fetch(self, asset_id: str, dest: Path, known: object = None) -> DownloadedFile:
        await self.gates("download")
        return DownloadedFile(dest, "ab" * 32, 123)

    def _job(self, job_id: str, status: str, *, error: str | None = None,
             assets: tuple[str, ...] = ()) -> RemoteJob:
        return RemoteJob(job_id, RemoteStatus.parse(status), status, 0.5, asset_ids=assets,
                         error=error, input=json.loads(canonical_json(PARAMS)),
                         created_at="2099-01-01T00:00:00.000Z", cu_cost=10.0)


@dataclass
class Batch:
    """The real parts of a one-job batch over a fake world, inspectable afterwards."""

    world: FakeWorld
    admission: Admission
    budget: Budget
    reconciler: Reconciler
    writer: LedgerWriter
    scheduler: Scheduler


def build(
    world: FakeWorld, tmp_path: Path, withdrawals: Path | None = None,
    cancel_at_api: Any = None,
) -> Batch:
    time = FakeTime()
    clock = time.as_clock()
    control = Control(total=1)
    writer = LedgerWriter(world)
    book = JobBook(writer, {}, (count_failures(control.count_failure),))
    budget = Budget(1000.0)
    reconciler = Reconciler(world.list_jobs, claimed=set(), settle=5.0, clock=clock)
    note = lambda _message: None  # noqa: E731 - a sink for the notes
    pulled = None if withdrawals is None else Withdrawals(
        withdrawals, state_of=book.get, record=book.record, run_jobs={"shot"},
        cancel_at_api=cancel_at_api, note=note)
    submitter = Submitter(book=book, make_body=world.make_body, generate=world.generate,
                          price=world.price, budget=budget, reconciler=reconciler,
                          may_submit=lambda: control.submissions_allowed, note=note,
                          clock=clock, withdrawals=pulled)
    follower = Follower(book=book, get_job=world.get_job, watcher=None,
                        policy=PollPolicy(0.1, 1.5, 1.0, 60.0), fetch=world.fetch,
                        out_dir=tmp_path, note=note, clock=clock)
    admission = Admission(window=opening_window(1), workers=2, model_limits={MODEL: 1},
                          rate=RateLimiter(None, clock=clock), clock=clock)
    scheduler = Scheduler(admission=admission, submitter=submitter, follower=follower,
                          control=control, download_concurrency=1, auto_retries=1, note=note,
                          withdrawals=pulled)
    return Batch(world, admission, budget, reconciler, writer, scheduler)


ITEM = WorkItem(
    JobSpec("shot", MODEL, PARAMS, SourceLocation("m.yaml", 1, 1), Path(".")),
    Decision(Action.SUBMIT, "not submitted yet"), None,
)


async def run(batch: Batch) -> None:
    """Run the batch; cancel it once it waits at the gate it is to stop at."""
    gates = batch.world.gates
    async with anyio.create_task_group() as outer:
        outer.start_soon(batch.writer.run)
        try:
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as tg:

                    async def cancel_at_the_gate() -> None:
                        await gates.reached.wait()
                        scope.cancel()
                        gates.release.set()

                    tg.start_soon(cancel_at_the_gate)
                    await batch.scheduler.run([ITEM])
                    tg.cancel_scope.cancel()
        finally:
            batch.writer.close()  # as run_batch does, however the batch ends


def assert_nothing_leaked(batch: Batch, where: str) -> None:
    admission = batch.admission
    model_slots = admission.models.get(MODEL)
    assert model_slots is not None
    held = {
        "places in flight": admission.in_flight.count,
        "model places": model_slots.count,
        "workers": admission.workers.count,
        "reserved CU": batch.budget.reserved,
        "bodies held": len(batch.reconciler._holders),
        "POSTs in the air": len(batch.reconciler._posting),
    }
    assert held == dict.fromkeys(held, 0), f"cancelled at {where}: {held}"


@pytest.mark.parametrize("scenario", ["success", "lost answer", "transient failure"])
async def test_a_job_cancelled_at_any_await_point_leaks_nothing(
    scenario: str, tmp_path: Path
) -> None:
    whole = build(FakeWorld(Gates(), scenario), tmp_path)
    await run(whole)
    assert_nothing_leaked(whole, "no gate (the whole life)")
    steps = whole.world.gates.passed
    assert {"upload", "price", "post", "ledger", "poll", "download"} <= set(steps)
    if scenario == "lost answer":
        assert "listing" in steps
    for stop_at in range(1, len(steps) + 1):
        batch = build(FakeWorld(Gates(stop_at), scenario), tmp_path)
        with anyio.fail_after(10):
            await run(batch)
        where = f"gate {stop_at} ({steps[stop_at - 1]})"
        assert_nothing_leaked(batch, where)
        # Money: every POST that went out has its jobId in the ledger, even when the
        # cancellation arrived while it was in the air (a lost answer is adopted instead).
        submitted = [e for e in batch.world.written if isinstance(e, Submitted)]
        answered = batch.world.posts - (1 if scenario == "lost answer" else 0)
        assert len(submitted) >= answered, where


async def test_the_gates_see_the_whole_life_of_a_job(tmp_path: Path) -> None:
    batch = build(FakeWorld(Gates(), "success"), tmp_path)
    await run(batch)
    lives = [s for s in batch.world.gates.passed if s != "ledger"]
    assert lives == ["upload", "price", "post", "poll", "poll", "download"]
    kinds = [type(e).__name__ for e in batch.world.written]
    assert kinds == ["Intended", "Submitted", "Running", "Finished", "Downloaded"]


async def test_a_transient_failure_is_posted_again_under_a_new_attempt(tmp_path: Path) -> None:
    batch = build(FakeWorld(Gates(), "transient failure"), tmp_path)
    await run(batch)
    attempts = [e.attempt for e in batch.world.written if isinstance(e, Submitted)]
    assert attempts == [1, 2] and batch.world.posts == 2


def test_the_fake_errors_are_the_real_classes() -> None:
    # The scenarios lean on these: a lost answer is not transient (never re-sent blindly).
    assert not issubclass(OutcomeUnknownError, TransientApiError)


class RequestAtGate(Gates):
    """At the `stop_at`-th await point, `cancel SHOT` is requested (as the command does,
    through the folder) and the job goes on."""

    def __init__(self, folder: Path, stop_at: int | None = None) -> None:
        super().__init__(stop_at)
        self.folder = folder
        self.posts_then: int | None = None
        self.world: FakeWorld | None = None

    async def __call__(self, name: str) -> None:
        self.passed.append(name)
        if len(self.passed) == self.stop_at:
            assert self.world is not None
            self.posts_then = self.world.posts
            append_request(self.folder, ["shot"], [])
        await anyio.lowlevel.checkpoint()


@pytest.mark.parametrize("scenario", ["success", "lost answer", "transient failure"])
async def test_a_cancel_request_at_any_await_point_is_never_followed_by_a_post(
    scenario: str, tmp_path: Path
) -> None:
    whole = build(FakeWorld(Gates(), scenario), tmp_path)
    await run(whole)
    steps = len(whole.world.gates.passed)
    for stop_at in range(1, steps + 1):
        folder = tmp_path / f"gate-{stop_at}"
        folder.mkdir()
        gates = RequestAtGate(folder, stop_at)
        world = FakeWorld(gates, scenario)
        gates.world = world
        asked: list[str] = []

        async def cancel_at_api(job_id: str, asked: list[str] = asked) -> None:
            asked.append(job_id)

        batch = build(world, tmp_path, withdrawals=folder, cancel_at_api=cancel_at_api)
        with anyio.fail_after(10):
            await run(batch)
        where = f"gate {stop_at} ({gates.passed[stop_at - 1]})"
        assert gates.posts_then is not None, where
        assert world.posts == gates.posts_then, f"a POST after the cancel, at {where}"
        events = world.written
        if gates.posts_then == 0:
            # Never sent: the job is canceled without a jobId, and an intent already
            # durable is closed (nothing was created) before it.
            last = events[-1]
            assert isinstance(last, Finished) and last.outcome is Outcome.CANCELED, where
            assert last.job_id is None, where
            if any(isinstance(e, Intended) for e in events):
                assert isinstance(events[-2], NotSubmitted), where
        elif where.endswith("(post)"):
            # The request came while the POST was in the air: the job it created (or the
            # one adopted after a lost answer) is cancelled at the API by the run.
            assert asked == [f"job_{gates.posts_then}"], where
        else:
            assert len(asked) <= 1, where


class _Unwritten:
    """The book's sink where adopting must write nothing."""

    async def append(self, event: Event) -> None:
        raise AssertionError(f"adopting wrote {event}")


def test_records_taken_over_from_another_runner_move_the_counts() -> None:
    """A shared batch's runner adopts the records another runner wrote meanwhile: the
    progress counts move with them (before: `submitted -2 running -1` after a takeover)."""
    progress = Progress(total=3, control=Control(total=3), clock=lambda: 0.0)
    progress.start([JobState.PENDING] * 3)
    book = JobBook(_Unwritten(), {}, (progress.observe,), on_adopt=progress.moved)
    running = replay([
        Intended(ts="2026-12-01T00:00:00Z", job="a", attempt=1, model="m", body={}),
        Submitted(ts="2026-12-01T00:00:01Z", job="a", job_id="job_a", model="m", attempt=1),
        Running(ts="2026-12-01T00:00:02Z", job="a", job_id="job_a"),
    ])
    book.adopt(running)
    book.adopt(running)  # the same records again: nothing moves twice
    assert progress.states["running"] == 1 and progress.states["pending"] == 2
    assert all(n >= 0 for n in progress.states.values())
