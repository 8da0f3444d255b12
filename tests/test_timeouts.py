"""A job past its deadline, or that the API cannot be asked about, means one thing
everywhere: still in flight at the API, no failure, followed again by the next run."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from runner.batch import Follower, HaltReason, JobBook
from runner.domain import JobSpec, JobState, RemoteJob, SourceLocation
from runner.errors import AuthError, PermanentApiError
from runner.ledger import Event, JobRecord, LedgerWriter, PollFailed, TimedOut
from runner.polling import PollPolicy
from tests.helpers.http import FakeTime
from tests.helpers.runs import (
    background_simulator,
    ledger_events,
    run_cli,
    status_json,
    t2v_jobs,
    write_manifest,
)


@pytest.mark.usefixtures("api_credentials")
def test_timed_out_jobs_stay_in_flight_and_are_no_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(3))
    out = tmp_path / "out"
    with background_simulator(job_seconds=(60.0, 60.0)) as sim:
        # Before, each timed-out job counted as failed: --max-failures 1 halted (exit 3).
        code = run_cli(manifest, out, sim, "--job-timeout", "0.5", "--max-failures", "1")
        captured = capsys.readouterr()
        assert code == 1  # not every job is done, and nothing halted
        assert "halted" not in captured.err
        assert "0 failed" not in captured.out and "failed" not in captured.out
        assert "3 running" in captured.out or "3 submitted" in captured.out
        assert "timed out 3 (polled again next run)" in captured.err
        events = ledger_events(out)
        assert [e["event"] for e in events].count("timed-out") == 3
        rows = status_json(out, capsys)
        assert {r["state"] for r in rows} <= {"submitted", "running"}
        assert all("will poll it again" in r["next"] for r in rows)
        # The next run follows them again (and here, times them out again), posting nothing.
        created = dict(sim.stats.submissions_by_fingerprint)
        assert sum(created.values()) == 3
        assert run_cli(manifest, out, sim, "--job-timeout", "0.3") == 1
        assert dict(sim.stats.submissions_by_fingerprint) == created


class Book:
    """A job book over an in-memory ledger."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        ledger = self

        class Memory:
            async def append_many(self, events: list[Event]) -> None:
                ledger.events.extend(events)

            def read_events(self) -> Any:
                return iter(())

        self.writer = LedgerWriter(Memory())
        record = JobRecord(id="shot", state=JobState.SUBMITTED, job_id="job_1", attempt=1)
        self.book = JobBook(self.writer, {"shot": record})


SPEC = JobSpec("shot", "m", {}, SourceLocation("m.yaml", 1, 1), Path("."))


def follower(book: JobBook, error: Exception, tmp_path: Path) -> Follower:
    async def get_job(_: str) -> RemoteJob:
        raise error

    async def fetch(*_: Any) -> Any:
        raise AssertionError("nothing to download")

    return Follower(book=book, get_job=get_job, watcher=None,
                    policy=PollPolicy(0.1, 1.5, 1.0, 60.0), fetch=fetch, out_dir=tmp_path,
                    note=lambda _m: None, clock=FakeTime().as_clock())


async def test_a_polling_error_is_its_own_event_not_a_timeout(tmp_path: Path) -> None:
    memory = Book()
    async with anyio.create_task_group() as tg:
        tg.start_soon(memory.writer.run)
        outcome = await follower(memory.book, PermanentApiError("404 job not found"),
                                 tmp_path).follow(SPEC, "job_1")
        memory.writer.close()
    assert outcome.final is None and outcome.halt is None
    assert [type(e) for e in memory.events] == [PollFailed]
    assert not any(isinstance(e, TimedOut) for e in memory.events)
    record = memory.book.get("shot")
    assert record is not None
    assert record.state is JobState.SUBMITTED and record.poll_failed and record.unfollowed
    assert record.error == "polling failed: 404 job not found"


async def test_an_auth_failure_while_following_is_a_halt_not_an_event(tmp_path: Path) -> None:
    memory = Book()
    async with anyio.create_task_group() as tg:
        tg.start_soon(memory.writer.run)
        outcome = await follower(memory.book, AuthError("401 Unauthorized", status=401),
                                 tmp_path).follow(SPEC, "job_1")
        memory.writer.close()
    assert outcome.halt is HaltReason.AUTH and memory.events == []


@pytest.mark.usefixtures("api_credentials")
@pytest.mark.parametrize("mode", ["list", "each"])
def test_a_job_the_api_no_longer_knows_is_lost_not_an_hours_wait(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: str
) -> None:
    from urllib.parse import urlsplit

    manifest = write_manifest(tmp_path, t2v_jobs(3))
    out = tmp_path / "out"
    with background_simulator(job_seconds=(60.0, 60.0)) as first:
        assert run_cli(manifest, out, first, "--job-timeout", "0.5") == 1
        ports = {"port": urlsplit(first.base_url).port, "cdn_port": urlsplit(first.cdn_url).port}
    # The same API origin, which no longer knows those jobIds: every GET of them is a 404.
    with background_simulator(**ports) as second:
        started = time.monotonic()
        capsys.readouterr()
        code = run_cli(manifest, out, second, "--poll-mode", mode, "--lost-grace", "0.5")
        took = time.monotonic() - started
        captured = capsys.readouterr()
        assert code == 1 and took < 20, (took, captured.err)  # not the 3,600 s job timeout
        assert second.stats.submissions_by_fingerprint == Counter()  # nothing posted again
        events = ledger_events(out)
        assert [e["event"] for e in events].count("lost") == 3
        assert "--retry-failed posts it again" in captured.err
        rows = status_json(out, capsys)
        assert {r["state"] for r in rows} == {"failed"}
        assert all("lost" in r["error"] and "--retry-failed" in r["next"] for r in rows)
        # What to do next works: the lost jobs are posted again, once each.
        assert run_cli(manifest, out, second, "--retry-failed") == 0
        assert set(second.stats.submissions_by_fingerprint.values()) == {1}
        assert len(second.stats.submissions_by_fingerprint) == 3
