"""The ledger: replay of every event kind, torn lines, durable group commits, encoding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from runner.domain import JobState
from runner.ledger.journal import (
    LEDGER_NAME,
    AssetRecord,
    JobRecord,
    JsonlLedger,
    LedgerWriter,
    encode_event,
    make_event,
    parse_lines,
    replay,
)

TS = "2025-01-01T12:00:00.000Z"


def ev(job: str, event: str, **fields: Any) -> dict[str, Any]:
    return make_event(job, event, ts=TS, **fields)


def intent(job: str = "a", attempt: int = 1, **fields: Any) -> dict[str, Any]:
    params = fields.pop("params", {"prompt": "fog"})
    return ev(
        job,
        "intent",
        attempt=attempt,
        model="m1",
        params=params,
        body=params,
        fingerprint="fp",
        **fields,
    )


def submitted(job: str = "a", job_id: str = "job_1", **fields: Any) -> dict[str, Any]:
    return ev(job, "submitted", jobId=job_id, model="m1", attempt=1, **fields)


def downloaded(
    job: str = "a", asset: str = "asset_1", path: str = "videos/a.mp4"
) -> dict[str, Any]:
    return ev(job, "downloaded", assetId=asset, path=path, sha256="ab" * 32, bytes=123)


# --- make_event ---------------------------------------------------------------------------


def test_make_event_puts_ts_job_event_first_and_drops_none() -> None:
    event = make_event("a", "failed", ts=TS, jobId="j", error=None, hint="h")
    assert list(event) == ["ts", "job", "event", "jobId", "hint"]
    assert event == {"ts": TS, "job": "a", "event": "failed", "jobId": "j", "hint": "h"}


def test_make_event_stamps_utc_iso_time() -> None:
    ts = make_event("a", "intent")["ts"]
    assert ts.endswith("Z") and "T" in ts
    assert len(ts.split(".")[-1]) == 4  # milliseconds then Z


# --- replay: one table row per event kind ---------------------------------------------------


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        pytest.param(
            [intent()],
            {
                "state": JobState.PENDING,
                "unresolved_intent": True,
                "model": "m1",
                "params": {"prompt": "fog"},
                "body": {"prompt": "fog"},
                "fingerprint": "fp",
                "attempt": 1,
                "intent_ts": TS,
                "job_id": None,
            },
            id="intent",
        ),
        pytest.param(
            [intent(), submitted(cost=10.0)],
            {
                "state": JobState.SUBMITTED,
                "job_id": "job_1",
                "unresolved_intent": False,
                "cost": 10.0,
                "total_cost": 10.0,
                "reconciled": False,
            },
            id="submitted",
        ),
        pytest.param(
            [intent(), submitted(reconciled=True)],
            {"state": JobState.SUBMITTED, "reconciled": True, "cost": None, "total_cost": 0.0},
            id="submitted-reconciled",
        ),
        pytest.param(
            [intent(), ev("a", "unknown", attempt=1, error="reset")],
            {"state": JobState.PENDING, "unresolved_intent": True, "error": "reset"},
            id="unknown",
        ),
        pytest.param(
            [intent(), ev("a", "rejected", attempt=1, error="bad duration", status=422)],
            {
                "state": JobState.FAILED,
                "unresolved_intent": False,
                "error": "bad duration",
                "remote_status": 422,
            },
            id="rejected",
        ),
        pytest.param(
            [intent(), ev("a", "not-submitted", attempt=1, error="402 credits")],
            {"state": JobState.PENDING, "unresolved_intent": False, "error": "402 credits"},
            id="not-submitted",
        ),
        pytest.param(
            [intent(), submitted(), ev("a", "running", jobId="job_1", status="in-progress")],
            {"state": JobState.RUNNING, "remote_status": "in-progress"},
            id="running",
        ),
        pytest.param(
            [
                intent(),
                submitted(),
                ev("a", "succeeded", jobId="job_1", status="success", assetIds=["x", "y"]),
            ],
            {
                "state": JobState.SUCCEEDED,
                "remote_status": "success",
                "asset_ids": ("x", "y"),
                "error": None,
            },
            id="succeeded",
        ),
        pytest.param(
            [
                intent(),
                submitted(),
                ev("a", "failed", jobId="job_1", status="failure", error="nsfw", hint="reword"),
            ],
            {
                "state": JobState.FAILED,
                "remote_status": "failure",
                "error": "nsfw",
                "hint": "reword",
            },
            id="failed",
        ),
        pytest.param(
            [intent(), submitted(), ev("a", "canceled", jobId="job_1", status="canceled")],
            {"state": JobState.CANCELED, "remote_status": "canceled"},
            id="canceled",
        ),
        pytest.param(
            [intent(), submitted(), ev("a", "timed-out", jobId="job_1", error="deadline")],
            {
                "state": JobState.SUBMITTED,
                "timed_out": True,
                "error": "deadline",
                "job_id": "job_1",
            },
            id="timed-out",
        ),
        pytest.param(
            [
                intent(),
                submitted(),
                ev("a", "succeeded", jobId="job_1", status="success", assetIds=["asset_1"]),
                downloaded(),
            ],
            {
                "state": JobState.SUCCEEDED,
                "assets": (AssetRecord("asset_1", "videos/a.mp4", "ab" * 32, 123),),
            },
            id="downloaded",
        ),
        pytest.param(
            [
                intent(),
                submitted(),
                ev("a", "succeeded", jobId="job_1", status="success", assetIds=["asset_1"]),
                ev("a", "download-failed", assetId="asset_1", error="403 expired"),
            ],
            {"state": JobState.SUCCEEDED, "assets": (), "error": "403 expired"},
            id="download-failed",
        ),
    ],
)
def test_replay_folds_each_event_kind(
    events: list[dict[str, Any]], expected: dict[str, Any]
) -> None:
    record = replay(events)["a"]
    for name, value in expected.items():
        assert getattr(record, name) == value, name


def test_replay_terminal_event_takes_job_id_from_record_when_absent() -> None:
    record = replay([intent(), submitted(), ev("a", "failed", status="failure")])["a"]
    assert record.job_id == "job_1"


def test_running_is_ignored_unless_the_job_is_submitted() -> None:
    events = [
        intent(),
        submitted(),
        ev("a", "succeeded", jobId="job_1", status="success", assetIds=[]),
        ev("a", "running", jobId="job_1", status="in-progress"),  # a late, reordered answer
    ]
    assert replay(events)["a"].state is JobState.SUCCEEDED
    assert replay([ev("a", "running", jobId="j", status="queued")])["a"].state is (JobState.PENDING)


def test_terminal_state_clears_timed_out() -> None:
    events = [
        intent(),
        submitted(),
        ev("a", "timed-out", jobId="job_1", error="deadline"),
        ev("a", "succeeded", jobId="job_1", status="success", assetIds=["asset_1"]),
    ]
    assert replay(events)["a"].timed_out is False


def test_a_new_intent_starts_a_fresh_attempt_but_keeps_history_and_cost() -> None:
    events = [
        intent(),
        submitted(cost=10.0),
        ev("a", "failed", jobId="job_1", status="failure", error="boom"),
        intent(attempt=2, params={"prompt": "new"}),
        submitted(job_id="job_2", cost=5.0),
    ]
    record = replay(events)["a"]
    assert record.attempt == 2
    assert record.job_id == "job_2"
    assert record.previous_job_ids == ("job_1",)
    assert record.params == {"prompt": "new"}
    assert record.error is None
    assert record.cost == 5.0
    assert record.total_cost == 15.0
    assert record.state is JobState.SUBMITTED


def test_a_new_intent_forgets_the_previous_attempts_assets() -> None:
    events = [
        intent(),
        submitted(),
        ev("a", "succeeded", jobId="job_1", status="success", assetIds=["asset_1"]),
        downloaded(),
        intent(attempt=2),
    ]
    record = replay(events)["a"]
    assert (record.assets, record.asset_ids, record.state) == ((), (), JobState.PENDING)


def test_intent_without_attempt_counts_as_first() -> None:
    record = replay([ev("a", "intent", model="m1", params={}, body={})])["a"]
    assert record.attempt == 1


def test_download_of_the_same_asset_replaces_the_earlier_record() -> None:
    events = [
        intent(),
        submitted(),
        ev("a", "succeeded", jobId="job_1", status="success", assetIds=["asset_1", "asset_2"]),
        downloaded(asset="asset_1", path="videos/a_1.mp4"),
        downloaded(asset="asset_2", path="videos/a_2.mp4"),
        downloaded(asset="asset_1", path="videos/a_1.mp4"),
    ]
    record = replay(events)["a"]
    assert [a.asset_id for a in record.assets] == ["asset_2", "asset_1"]
    assert record.all_downloaded


@pytest.mark.parametrize(
    ("state", "asset_ids", "have", "expected"),
    [
        (JobState.SUCCEEDED, ("x",), ("x",), True),
        (JobState.SUCCEEDED, ("x", "y"), ("x",), False),
        (JobState.SUCCEEDED, (), (), False),  # a success that produced nothing is not done
        (JobState.FAILED, ("x",), ("x",), False),
        (JobState.RUNNING, (), (), False),
    ],
)
def test_all_downloaded(
    state: JobState, asset_ids: tuple[str, ...], have: tuple[str, ...], expected: bool
) -> None:
    assets = tuple(AssetRecord(a, f"videos/{a}.mp4", "0" * 64, 1) for a in have)
    record = JobRecord(id="a", state=state, asset_ids=asset_ids, assets=assets)
    assert record.all_downloaded is expected


def test_replay_keeps_first_seen_job_order_and_separates_jobs() -> None:
    events = [
        intent("b"),
        intent("a"),
        submitted("b", "job_b"),
        intent("c"),
        submitted("a", "job_a"),
    ]
    records = replay(events)
    assert list(records) == ["b", "a", "c"]
    assert records["a"].job_id == "job_a"
    assert records["b"].job_id == "job_b"
    assert records["c"].state is JobState.PENDING


def test_replay_applies_events_in_file_order() -> None:
    first = [intent(), submitted(), ev("a", "failed", jobId="job_1", status="failure")]
    assert replay(first)["a"].state is JobState.FAILED
    assert replay([*first, intent(attempt=2)])["a"].state is JobState.PENDING


@pytest.mark.parametrize(
    "noise",
    [
        {"ts": TS, "job": "a", "event": "paused-by-a-newer-version", "x": 1},
        {"ts": TS, "job": "a"},  # no event at all
        {"ts": TS, "event": "submitted", "jobId": "j"},  # no job
        {"ts": TS, "job": 7, "event": "submitted", "jobId": "j"},  # job not a string
    ],
)
def test_replay_ignores_unknown_or_malformed_events(noise: dict[str, Any]) -> None:
    baseline = replay([intent(), submitted()])
    assert replay([intent(), noise, submitted()]) == baseline


def test_replay_of_nothing_is_empty() -> None:
    assert replay([]) == {}


# --- encoding and parsing ------------------------------------------------------------------


def test_encode_parse_round_trip_keeps_non_ascii() -> None:
    event = ev("chevalier-brume", "intent", params={"prompt": "Un chevalier 騎士 🗡️ — «brume»"})
    line = encode_event(event)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert "騎士".encode() in line  # written as UTF-8, not \u escapes
    assert list(parse_lines([line])) == [event]


def test_encode_event_escapes_newlines_inside_values() -> None:
    line = encode_event(ev("a", "failed", error="line one\nline two"))
    assert line.count(b"\n") == 1
    assert next(parse_lines([line]))["error"] == "line one\nline two"


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([b'{"a":1}\n', b'{"b":2}\n'], [{"a": 1}, {"b": 2}]),
        ([b'{"a":1}\n', b'{"b":'], [{"a": 1}]),  # torn tail
        ([b'{"a":1}\n', b"\n", b"   \n"], [{"a": 1}]),  # blank lines
        ([b"[1,2]\n", b"3\n", b'"x"\n', b"null\n"], []),  # JSON but not objects
        ([b'{"a":"\xe9\xff"}\n'], []),  # not UTF-8
        ([b"garbage\n", b'{"a":1}\n'], [{"a": 1}]),
    ],
)
def test_parse_lines_skips_what_does_not_parse(
    lines: list[bytes], expected: list[dict[str, Any]]
) -> None:
    assert list(parse_lines(lines)) == expected


# --- JsonlLedger on disk -------------------------------------------------------------------


def test_read_events_of_a_missing_ledger_is_empty(tmp_path: Path) -> None:
    assert list(JsonlLedger(tmp_path).read_events()) == []


def test_write_batch_appends_one_line_per_event(tmp_path: Path) -> None:
    ledger = JsonlLedger(tmp_path)
    ledger.write_batch([intent(), submitted()])
    ledger.write_batch([ev("a", "running", jobId="job_1", status="queued")])
    ledger.close()
    lines = (tmp_path / LEDGER_NAME).read_bytes().splitlines()
    assert [json.loads(x)["event"] for x in lines] == ["intent", "submitted", "running"]
    assert list(JsonlLedger(tmp_path).read_events()) == [
        intent(),
        submitted(),
        ev("a", "running", jobId="job_1", status="queued"),
    ]


def test_appends_never_rewrite_earlier_lines(tmp_path: Path) -> None:
    ledger = JsonlLedger(tmp_path)
    ledger.write_batch([intent()])
    before = (tmp_path / LEDGER_NAME).read_bytes()
    ledger.write_batch([submitted()])
    ledger.close()
    assert (tmp_path / LEDGER_NAME).read_bytes().startswith(before)


def test_torn_last_line_is_tolerated_on_read(tmp_path: Path) -> None:
    path = tmp_path / LEDGER_NAME
    path.write_bytes(encode_event(intent()) + encode_event(submitted())[:25])
    assert list(JsonlLedger(tmp_path).read_events()) == [intent()]


@pytest.mark.parametrize("torn", [b'{"ts":"2025', b'{"job":"a","event":"subm\xc3', b"{"])
def test_append_after_a_torn_tail_stays_a_separate_parseable_line(
    tmp_path: Path, torn: bytes
) -> None:
    path = tmp_path / LEDGER_NAME
    path.write_bytes(encode_event(intent()) + torn)
    ledger = JsonlLedger(tmp_path)  # a new run opens the torn file
    ledger.write_batch([submitted()])
    ledger.write_batch([ev("a", "running", jobId="job_1", status="queued")])
    ledger.close()
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    assert raw.splitlines()[1] == torn  # the torn line is kept, never rewritten
    events = list(JsonlLedger(tmp_path).read_events())
    assert [e["event"] for e in events] == ["intent", "submitted", "running"]
    assert replay(events)["a"].state is JobState.RUNNING


def test_a_new_writer_appends_to_an_existing_ledger_without_a_blank_line(tmp_path: Path) -> None:
    path = tmp_path / LEDGER_NAME
    path.write_bytes(encode_event(intent()))
    ledger = JsonlLedger(tmp_path)
    ledger.write_batch([submitted()])
    ledger.close()
    assert path.read_bytes() == encode_event(intent()) + encode_event(submitted())


async def test_append_many_is_durable_on_return(tmp_path: Path) -> None:
    ledger = JsonlLedger(tmp_path)
    await ledger.append_many([intent(), submitted()])
    assert list(JsonlLedger(tmp_path).read_events()) == [intent(), submitted()]
    ledger.close()
    ledger.close()  # closing twice is harmless


# --- LedgerWriter: one writer, group commits -----------------------------------------------


class GatedLedger:
    """A Ledger fake: counts concurrent writers; the first batch waits for a gate."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.durable: list[dict[str, Any]] = []
        self.writing = 0
        self.max_writing = 0
        self.gate = anyio.Event()
        self.first_started = anyio.Event()

    async def append_many(self, events: list[dict[str, Any]]) -> None:
        self.writing += 1
        self.max_writing = max(self.max_writing, self.writing)
        try:
            if not self.first_started.is_set():
                self.first_started.set()
                await self.gate.wait()
            await anyio.lowlevel.checkpoint()
            self.batches.append(list(events))
            self.durable.extend(events)
        finally:
            self.writing -= 1

    def read_events(self) -> Any:
        return iter(self.durable)


async def test_writer_group_commits_concurrent_appends() -> None:
    ledger = GatedLedger()
    writer = LedgerWriter(ledger)
    returned: list[str] = []

    async def append(job: str) -> None:
        event = ev(job, "intent")
        await writer.append(event)
        assert event in ledger.durable  # durable when append returns
        returned.append(job)

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer.run)
        tg.start_soon(append, "first")
        await ledger.first_started.wait()
        async with anyio.create_task_group() as appenders:
            for n in range(20):
                appenders.start_soon(append, f"job{n}")
            await anyio.wait_all_tasks_blocked()
            assert returned == []  # nobody returns before the write is done
            ledger.gate.set()
        writer.close()

    assert len(ledger.durable) == 21
    assert ledger.batches[0] == [ev("first", "intent")]
    assert len(ledger.batches) == 2  # the 20 waiting events went in one commit
    assert ledger.max_writing == 1  # one writer
    assert sorted(returned) == sorted(["first", *(f"job{n}" for n in range(20))])


async def test_writer_keeps_append_order_of_one_task() -> None:
    ledger = GatedLedger()
    ledger.gate.set()
    writer = LedgerWriter(ledger)
    async with anyio.create_task_group() as tg:
        tg.start_soon(writer.run)
        for n in range(5):
            await writer.append(ev("a", "intent", attempt=n + 1))
        writer.close()
    assert [e["attempt"] for e in ledger.durable] == [1, 2, 3, 4, 5]


async def test_writer_returns_when_closed_and_drains_queued_events() -> None:
    ledger = GatedLedger()
    ledger.gate.set()
    writer = LedgerWriter(ledger)
    async with anyio.create_task_group() as tg:
        for n in range(3):
            tg.start_soon(writer.append, ev(f"j{n}", "intent"))
        await anyio.wait_all_tasks_blocked()
        writer.close()  # closed before the writer even started
        tg.start_soon(writer.run)
    assert sorted(e["job"] for e in ledger.durable) == ["j0", "j1", "j2"]


async def test_writer_with_the_real_ledger_writes_every_event(tmp_path: Path) -> None:
    ledger = JsonlLedger(tmp_path)
    writer = LedgerWriter(ledger)
    async with anyio.create_task_group() as tg:
        tg.start_soon(writer.run)
        async with anyio.create_task_group() as appenders:
            for n in range(50):
                appenders.start_soon(writer.append, ev(f"job{n:02}", "intent", note="é"))
        writer.close()
    ledger.close()
    events = list(JsonlLedger(tmp_path).read_events())
    assert sorted(e["job"] for e in events) == [f"job{n:02}" for n in range(50)]
    assert (tmp_path / LEDGER_NAME).read_bytes().count(b"\n") == 50


async def test_a_cancelled_writer_still_serves_until_it_is_closed() -> None:
    # Shielded job tasks (a POST whose jobId must be recorded) outlive a cancelled batch;
    # the writer keeps serving them until the batch closes it.
    ledger = GatedLedger()
    writer = LedgerWriter(ledger)
    async with anyio.create_task_group() as tg:
        tg.start_soon(writer.run)
        tg.start_soon(writer.append, ev("a", "intent"))
        await ledger.first_started.wait()
        tg.cancel_scope.cancel()
        ledger.gate.set()
        with anyio.CancelScope(shield=True):
            await writer.append(ev("a", "submitted"))
        writer.close()
    assert ledger.durable == [ev("a", "intent"), ev("a", "submitted")]
