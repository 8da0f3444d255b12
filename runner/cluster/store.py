"""The shared ledger in PostgreSQL: its schema (created and migrated by the runner itself)
and the events store behind the `Ledger` protocol.

One database holds many batches; a batch is named by its output location (`batch_key`).
Events are the same typed events as `ledger.jsonl` (`to_line`/`from_line`), one row each,
in an append-only table ordered by `seq`; per-job state is derived by the same `apply`.
Every event row carries a client-made `event_id`, so a write retried after a lost commit
answer never stores an event twice.

Migrations are ordered SQL steps recorded in `kb_schema`; `migrate` applies the missing ones
in one transaction under a transaction-level advisory lock, so runners starting together
wait for each other and none applies a step twice. No session-level lock is ever held
across transactions (a pooler in transaction mode would hand it to someone else).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from runner.ledger import Event, from_line, to_line

# pg_advisory_xact_lock key of the migrations: "kb" + schema, as a number.
MIGRATION_LOCK = 0x6B62_5343_4845_4D41

# The schema, step by step: never edit a step that shipped, add one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE kb_batches (
        location text PRIMARY KEY,
        manifest text NOT NULL,
        manifest_sha256 text NOT NULL,
        origin text,
        account text,
        plan jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE kb_events (
        batch text NOT NULL REFERENCES kb_batches (location) ON DELETE CASCADE,
        seq bigserial NOT NULL,
        event_id uuid NOT NULL UNIQUE,
        job text NOT NULL,
        line jsonb NOT NULL,
        PRIMARY KEY (batch, seq)
    );
    CREATE INDEX kb_events_job ON kb_events (batch, job, seq);
    CREATE TABLE kb_runners (
        id uuid PRIMARY KEY,
        batch text NOT NULL REFERENCES kb_batches (location) ON DELETE CASCADE,
        host text NOT NULL,
        pid integer NOT NULL,
        started_at timestamptz NOT NULL DEFAULT now(),
        lease_until timestamptz NOT NULL,
        ended_at timestamptz
    );
    CREATE SEQUENCE kb_tokens;
    CREATE TABLE kb_jobs (
        batch text NOT NULL REFERENCES kb_batches (location) ON DELETE CASCADE,
        job text NOT NULL,
        position integer NOT NULL,
        status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'held', 'closed')),
        owner uuid REFERENCES kb_runners (id),
        token bigint NOT NULL DEFAULT 0,
        in_flight boolean NOT NULL DEFAULT false,
        PRIMARY KEY (batch, job)
    );
    CREATE INDEX kb_jobs_claimable ON kb_jobs (batch, position) WHERE status <> 'closed';
    CREATE INDEX kb_jobs_in_flight ON kb_jobs (batch) WHERE in_flight;
    CREATE TABLE kb_posts_in_air (
        account text NOT NULL,
        body_sha256 text NOT NULL,
        batch text NOT NULL,
        job text NOT NULL,
        since timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (account, body_sha256)
    );
    CREATE INDEX kb_posts_in_air_job ON kb_posts_in_air (batch, job);
    CREATE TABLE kb_listers (
        account text PRIMARY KEY,
        owner uuid NOT NULL,
        lease_until timestamptz NOT NULL
    );
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


def batch_key(location: str) -> str:
    """The batch's name in the database: its output location as given, normalized by the
    caller (`s3://bucket/prefix` without a trailing slash, or an absolute folder path)."""
    return location.rstrip("/") or "/"


def migrate(conn: psycopg.Connection[Any]) -> int:
    """Bring the schema to SCHEMA_VERSION in one transaction; the version it had before.

    Safe under concurrent first starts: the advisory lock is the transaction's, and the
    version table is created inside it.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS kb_schema (version integer PRIMARY KEY, "
                     "applied_at timestamptz NOT NULL DEFAULT now())")
        row = conn.execute("SELECT coalesce(max(version), 0) FROM kb_schema").fetchone()
        before = int(row[0]) if row else 0
        for version, step in enumerate(MIGRATIONS[before:], start=before + 1):
            conn.execute(step)
            conn.execute("INSERT INTO kb_schema (version) VALUES (%s)", (version,))
    return before


def event_row(batch: str, event: Event, event_id: uuid.UUID | None = None) -> tuple[Any, ...]:
    """The parameters of one kb_events insert."""
    return (batch, event_id or uuid.uuid4(), event.job, Jsonb(to_line(event)))


INSERT_EVENT = ("INSERT INTO kb_events (batch, event_id, job, line) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (event_id) DO NOTHING")


def decode_rows(rows: Sequence[tuple[Any, ...]] | Iterator[tuple[Any, ...]]) -> Iterator[Event]:
    """Events from (line,) rows, skipping any that is not an event."""
    for (line,) in rows:
        event = from_line(json.loads(line) if isinstance(line, str) else line)
        if event is not None:
            yield event


class PostgresLedger:
    """One batch's events in PostgreSQL, behind the `Ledger` protocol.

    `append_many` writes without any ownership check (the store as such; the runners of a
    shared batch write through `runner.cluster`'s fenced transactions instead).
    `read_events` streams the batch's events in order with a server-side cursor.
    """

    def __init__(self, conninfo: str, batch: str) -> None:
        self.conninfo = conninfo
        self.batch = batch

    async def append_many(self, events: list[Event]) -> None:
        conn = await psycopg.AsyncConnection.connect(self.conninfo)
        async with conn, conn.cursor() as cur:
            await cur.executemany(INSERT_EVENT, [event_row(self.batch, e) for e in events])

    def read_events(self) -> Iterator[Event]:
        return read_batch_events(self.conninfo, self.batch)


def read_batch_events(
    conninfo: str, batch: str, jobs: Sequence[str] | None = None
) -> Iterator[Event]:
    """The events of `batch` (of `jobs` only, when given) in the order they were written."""
    with (psycopg.connect(conninfo) as conn, conn.transaction(),
          conn.cursor(name="kb_events_reader") as cur):
        if jobs is None:
            cur.execute("SELECT line FROM kb_events WHERE batch = %s ORDER BY seq", (batch,))
        else:
            cur.execute("SELECT line FROM kb_events WHERE batch = %s AND job = ANY(%s) "
                        "ORDER BY seq", (batch, list(jobs)))
        cur.itersize = 2000
        yield from decode_rows(cur)
