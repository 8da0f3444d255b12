"""The batches a shared ledger holds: each named by its output location, with the manifest
it runs (its sha256: the same manifest may sit at different paths on different machines),
the API origin and account it is sent to, and its plan (the manifest's jobs, for `status`).

Everything here is synchronous and short: it runs before a run starts, or for `status`,
`report` and `cancel`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from runner.cluster.database import safe_url
from runner.cluster.store import migrate
from runner.domain import JobSpec
from runner.errors import UsageError
from runner.outdir import BatchIdentity, PlannedJob

LEDGER_ENV = "KLING_BATCH_LEDGER"
CONNECT_TIMEOUT = 10  # seconds, for a command's first connection


def batch_location(target: str) -> str:
    """The batch's name in the ledger: `s3://bucket/prefix` without a trailing slash, or a
    folder's resolved absolute path."""
    if "://" in target:
        scheme, _, rest = target.partition("://")
        return f"{scheme.lower()}://{rest.strip('/')}"
    return str(Path(target).resolve())


def is_ledger_url(value: str) -> bool:
    return value.startswith(("postgresql://", "postgres://"))


def check_ledger_url(value: str | None) -> str:
    """The ledger URL, or UsageError saying what a valid one looks like."""
    if not value:
        raise UsageError("no shared ledger given",
                         hint=f"pass --ledger postgresql://USER@HOST:PORT/DB or set {LEDGER_ENV}")
    if not is_ledger_url(value):
        raise UsageError(f"--ledger must be a postgresql:// URL, not {value.split('://')[0]!r}",
                         hint="e.g. --ledger postgresql://kling@db.example:5432/kling "
                         "(the password from PGPASSWORD or ~/.pgpass)")
    return value


@contextmanager
def connected(conninfo: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection with the schema migrated; UsageError (exit 2, nothing sent) when the
    server cannot be reached or refuses us."""
    try:
        conn = psycopg.connect(conninfo, connect_timeout=CONNECT_TIMEOUT, autocommit=True)
    except psycopg.Error as exc:
        raise UsageError(f"the shared ledger at {safe_url(conninfo)} cannot be reached: "
                         f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else exc}",
                         hint="check the URL, that PostgreSQL runs, and the password "
                         "(PGPASSWORD or ~/.pgpass)") from None
    with conn:
        migrate(conn)
        yield conn


@dataclass(frozen=True, slots=True)
class SharedBatch:
    """A batch as the ledger holds it."""

    location: str
    manifest: str
    manifest_sha256: str
    origin: str | None
    account: str | None
    plan: tuple[PlannedJob, ...]


def open_batch(
    conn: psycopg.Connection[Any], location: str, wanted: BatchIdentity,
    specs: Sequence[JobSpec], *, continue_batch: bool = False,
) -> SharedBatch:
    """Join the batch at `location`, creating it for a first run; its jobs' rows exist.

    Raises UsageError when the location holds another manifest's batch (unless
    `continue_batch`) or one sent to another API origin.
    """
    plan = [{"id": s.id, "model": s.model, "params": dict(s.params)} for s in specs]
    # No lock on the batch's row or on existing job rows: runners at work lock a job's row,
    # then the batch's (a place); a runner joining must never hold them in the other order.
    with conn.transaction():
        conn.execute("INSERT INTO kb_batches (location, manifest, manifest_sha256, origin, "
                     "account, plan) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                     (location, wanted.manifest, wanted.manifest_sha256, wanted.origin,
                      wanted.account, Jsonb(plan)))
        row = conn.execute("SELECT manifest, manifest_sha256, origin FROM kb_batches WHERE "
                           "location = %s", (location,)).fetchone()
        assert row is not None
        _refuse_another(location, row, wanted, continue_batch=continue_batch)
    if row[1] != wanted.manifest_sha256:  # a continuation: its plan is the batch's now
        with conn.transaction():
            conn.execute("UPDATE kb_batches SET plan = %s, manifest = %s, manifest_sha256 = %s "
                         "WHERE location = %s", (Jsonb(plan), wanted.manifest,
                                                 wanted.manifest_sha256, location))
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany("INSERT INTO kb_jobs (batch, job, position) VALUES (%s, %s, %s) "
                        "ON CONFLICT (batch, job) DO NOTHING",
                        [(location, s.id, n) for n, s in enumerate(specs)])
    batch = read_shared_batch(conn, location)
    assert batch is not None
    return batch


def _refuse_another(
    location: str, row: tuple[Any, ...], wanted: BatchIdentity, *, continue_batch: bool
) -> None:
    manifest, sha, origin = row
    if sha != wanted.manifest_sha256 and not continue_batch:
        raise UsageError(
            f"{location} is the batch of another manifest ({manifest}) in the shared ledger",
            hint="run that manifest, choose another -o, or pass --continue-batch to let this "
            "manifest continue it")
    if origin is not None and wanted.origin is not None and origin != wanted.origin:
        raise UsageError(f"{location} is a batch sent to {origin}, not {wanted.origin}",
                         hint=f"pass --base-url {origin}, or choose another -o")


def read_shared_batch(conn: psycopg.Connection[Any], location: str) -> SharedBatch | None:
    """The batch at `location`, or None when the ledger holds none there."""
    row = conn.execute("SELECT manifest, manifest_sha256, origin, account, plan FROM "
                       "kb_batches WHERE location = %s", (location,)).fetchone()
    if row is None:
        return None
    manifest, sha, origin, account, plan = row
    jobs = tuple(PlannedJob(str(j["id"]), str(j["model"]), dict(j.get("params") or {}))
                 for j in plan)
    return SharedBatch(location, manifest, sha, origin, account, jobs)


def require_batch(conn: psycopg.Connection[Any], location: str) -> SharedBatch:
    """The batch at `location`; UsageError naming the batches the ledger does hold."""
    batch = read_shared_batch(conn, location)
    if batch is not None:
        return batch
    rows = conn.execute("SELECT location FROM kb_batches ORDER BY created_at DESC LIMIT 5"
                        ).fetchall()
    known = ", ".join(r[0] for r in rows) or "none"
    raise UsageError(f"the shared ledger holds no batch at {location}",
                     hint=f"pass the -o the batch was run with (batches there: {known})")
