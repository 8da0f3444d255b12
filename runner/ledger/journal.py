"""The ledger on disk: an append-only JSONL file and its one writer task.

Every line is one event (`runner.ledger.events` spells them). Lines are never rewritten. A
crash mid-write can leave a torn last line; the reader skips lines that do not parse, and
the writer first terminates a torn tail with a newline so that new events never glue onto
it. The `Ledger` protocol is the seam for other stores (a shared PostgreSQL ledger is
planned): append events durably, read them back in order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol

import anyio

from runner.errors import LedgerWriteError
from runner.jsonl import json_line, json_objects
from runner.ledger.events import Event, from_line, to_line
from runner.ledger.records import JobRecord, replay

LEDGER_NAME = "ledger.jsonl"


class Ledger(Protocol):
    """Where events go. `append_many` returns only once the events are durable."""

    async def append_many(self, events: list[Event]) -> None: ...

    def read_events(self) -> Iterator[Event]: ...


def parse_lines(lines: Iterable[bytes]) -> Iterator[Event]:
    """Decode ledger lines, skipping the ones a crash tore (or anything not an event)."""
    for obj in json_objects(lines):
        event = from_line(obj)
        if event is not None:
            yield event


def encode_event(event: Event) -> bytes:
    """One ledger line: compact JSON, UTF-8, newline-terminated."""
    return json_line(to_line(event))


class JsonlLedger:
    """The ledger as `DIR/ledger.jsonl`: append, flush and fsync; never rewrite.

    `write_batch` is synchronous and short (one `write` and one `fsync` per batch);
    `LedgerWriter` runs it off the event loop and batches concurrent events into one fsync.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / LEDGER_NAME
        self._fd: int | None = None

    def read_events(self) -> Iterator[Event]:
        """The events in file order, streamed: replaying a large ledger holds only the
        records it builds, not every event at once."""
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            yield from parse_lines(fh)

    def write_batch(self, events: list[Event]) -> None:
        """Append `events` durably (flush + fsync) in one write; raises OSError when not
        every byte could be written (a short write is never taken for a whole one)."""
        data = b"".join(encode_event(e) for e in events)
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            if _has_torn_tail(self._fd):
                data = b"\n" + data  # close the torn line so ours stand alone
        view = memoryview(data)
        while view:  # a full disk may take part of a write and refuse the rest
            view = view[os.write(self._fd, view):]
        os.fsync(self._fd)

    async def append_many(self, events: list[Event]) -> None:
        await anyio.to_thread.run_sync(self.write_batch, events)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _has_torn_tail(fd: int) -> bool:
    size = os.fstat(fd).st_size
    if size == 0:
        return False
    return os.pread(fd, 1, size - 1) != b"\n"


class LedgerWriter:
    """The one writer task of a ledger: events arrive through a stream, each batch is one fsync.

    `append` returns once the event is durable, so a caller that must not act before its
    record is safe (the intent before a POST, the jobId before anything else) just awaits it.
    """

    def __init__(
        self, ledger: Ledger, *, buffer: int = 1024,
        describe: Callable[[OSError], str] = str,
    ) -> None:
        self._ledger = ledger
        self._describe = describe  # the failure as a person reads it (folder, free space)
        self._failure: OSError | None = None
        self._send, self._receive = anyio.create_memory_object_stream[
            tuple[Event, anyio.Event]
        ](buffer)

    async def append(self, event: Event) -> None:
        """Queue `event` for the writer and wait until it is on disk.

        Raises LedgerWriteError once a write has failed: nothing may act on a record that
        is not durable.
        """
        self._raise_if_failed()
        done = anyio.Event()
        await self._send.send((event, done))
        await done.wait()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise LedgerWriteError(
                f"the ledger could not be written ({self._describe(self._failure)}); the run "
                "stopped",
                hint="free disk space or fix the folder's permissions, then run the same "
                "command to resume",
            ) from self._failure

    def close(self) -> None:
        """No more events: the writer finishes what it has and returns."""
        self._send.close()

    async def run(self) -> None:
        """Write events until `close` is called; run it in the batch's task group.

        Shielded: a cancelled batch still has tasks finishing shielded work (a POST whose
        jobId must be recorded); the writer serves them until `close`.
        """
        with anyio.CancelScope(shield=True):
            await self._serve()

    async def _serve(self) -> None:
        async with self._receive:
            async for first in self._receive:
                batch = [first]
                while True:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                if self._failure is None:
                    try:
                        await self._ledger.append_many([e for e, _ in batch])
                    except OSError as exc:
                        # Wake every waiter with the error rather than leave them hanging.
                        self._failure = exc
                for _, done in batch:
                    done.set()


def load_records(directory: Path) -> dict[str, JobRecord]:
    """Replay the folder's ledger into one record per job (empty for a new folder)."""
    return replay(JsonlLedger(directory).read_events())
