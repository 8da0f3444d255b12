"""The connection to the shared ledger: a psycopg pool and transactions that ride out a
PostgreSQL restart.

Every unit of work is one short transaction (`Database.transaction`). When the server goes
away (a restart, a failover, a terminated backend) the transaction is tried again on a new
connection, with growing pauses, for up to `patience` seconds; past that the run halts with
SharedLedgerError (exit 3, resumable). Retrying is safe because each unit is idempotent:
events carry their own id, and claims and slots are conditional updates.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool

from runner.clock import Clock
from runner.errors import SharedLedgerError

log = logging.getLogger(__name__)

T = TypeVar("T")
Work = Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]

# How long a run waits for the shared ledger to come back before it halts (seconds).
DEFAULT_PATIENCE = 60.0
RETRY_PAUSES = (0.1, 0.25, 0.5, 1.0, 2.0)
# Errors a new transaction may cure: the server went away, ended our session, or chose us
# as a deadlock or serialization victim, or a lock took too long.
RETRYABLE: tuple[type[Exception], ...] = (
    psycopg.OperationalError,
    psycopg.errors.SerializationFailure,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.LockNotAvailable,
    psycopg.errors.IdleInTransactionSessionTimeout,  # we were paused mid-transaction
)


def safe_url(conninfo: str) -> str:
    """The ledger URL as messages show it: host, port and database, never a password."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "the shared ledger"
    host = params.get("host", "localhost")
    port = params.get("port", "5432")
    return f"postgresql://{host}:{port}/{params.get('dbname', '')}"


class Database:
    """A pool of connections to the shared ledger and retried transactions on it."""

    def __init__(
        self, pool: AsyncConnectionPool, *, clock: Clock, patience: float = DEFAULT_PATIENCE,
        where: str = "the shared ledger",
    ) -> None:
        self.pool = pool
        self._clock = clock
        self._patience = patience
        self._where = where
        self.transactions = 0  # counted for the benchmark's queries per job
        # Once a transaction gave up, the others (the run's cleanup) try once, never wait
        # out the patience again: the run is halting.
        self._gave_up = False

    async def transaction(self, work: Work[T]) -> T:
        """Run `work(conn)` in one transaction, again on a new connection when the server
        went away; raises SharedLedgerError once `patience` has passed without success.

        An exception `work` raises rolls the transaction back and propagates."""
        started = self._clock.monotonic() - (self._patience if self._gave_up else 0.0)
        failures = 0
        while True:
            try:
                async with self.pool.connection() as conn, conn.transaction():
                    self.transactions += 1
                    result = await work(conn)
                self._gave_up = False
                return result
            except RETRYABLE as exc:
                waited = self._clock.monotonic() - started
                if waited >= self._patience:
                    self._gave_up = True
                    raise SharedLedgerError(
                        f"{self._where} could not be reached for {waited:.0f} s ({exc}); the "
                        "run stopped with every record in place",
                        hint="run the same command once PostgreSQL is back to resume",
                    ) from exc
                pause = RETRY_PAUSES[min(failures, len(RETRY_PAUSES) - 1)]
                failures += 1
                log.info("shared ledger unavailable (%s); trying again in %.2f s", exc, pause)
                await self._clock.sleep(pause)


def session_options(lease: float) -> str:
    """The libpq `options` of a runner's connections: a session idle inside a transaction
    for half a lease is ended by the server, and a statement waits that long for a lock at
    most. A runner paused (SIGSTOP) in the middle of a transaction would otherwise hold its
    row locks — the batch's row among them — and stop every other runner; ended, its locks
    go, and its own transaction, tried again when it wakes, meets the fence. Our
    transactions are a few statements long, so a live runner never waits that long (and if
    a stalled one does, its transaction is simply tried again). Behind a pooler that drops
    `options`, set both on the role instead (ALTER ROLE … SET …)."""
    ms = int(max(1.0, lease / 2) * 1000)
    return f"-c idle_in_transaction_session_timeout={ms} -c lock_timeout={ms}"


async def open_pool(
    conninfo: str, *, max_size: int = 8, connection_wait: float = 5.0,
    options: str | None = None,
) -> AsyncConnectionPool:
    """An open pool on `conninfo` (libpq rules: PGPASSWORD, ~/.pgpass apply); connections
    are checked before use, so one a restart broke is replaced, not handed out. A
    connection not had within `connection_wait` seconds is an OperationalError
    (PoolTimeout): the transaction's own retries decide how long to wait in all.
    `options`: libpq session options (`session_options`)."""
    kwargs: dict[str, object] = {"autocommit": True, "connect_timeout": 5}
    if options:
        kwargs["options"] = options
    pool = AsyncConnectionPool(conninfo, min_size=1, max_size=max_size, open=False,
                               check=AsyncConnectionPool.check_connection,
                               timeout=connection_wait, kwargs=kwargs)
    await pool.open(wait=False)
    return pool
