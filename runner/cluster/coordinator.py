"""The coordination of a shared batch's runners, in plain SQL: claims, leases, fencing,
batch-wide slots, the cluster-wide unknown-POST rule and the account's lister lease.

- A runner registers a row with a lease (`lease_until`, the database's clock) and renews it
  by heartbeat. A job is claimed (`FOR UPDATE SKIP LOCKED`) with a fresh fencing token from
  one sequence; a job held by a runner whose lease lapsed is claimable by the others
  (takeover), with a new token.
- Every event a runner writes for a job is one transaction that locks the job's row and
  checks the runner still holds it with its token: a runner paused past its lease whose
  job was taken over gets FencedError and never records over the new owner.
- The events that move a job at the API move its slot in the same transaction: an intent
  takes one of the batch's `--concurrency` places (counted over every runner, under the
  batch row's lock) and the in-air row of its body on its account (primary key: one POST of
  a body in the air per account, anywhere); the jobId (or a refusal) frees the body, a
  terminal state frees the place. A dead runner's places move with its jobs at takeover.
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, LiteralString

import psycopg

from runner.canonical import canonical_json
from runner.clock import Clock
from runner.cluster.database import Database
from runner.cluster.store import INSERT_EVENT, decode_rows, event_row
from runner.errors import FencedError
from runner.ledger import (
    Event,
    Finished,
    Intended,
    Lost,
    NotSubmitted,
    Rejected,
    Submitted,
    TimedOut,
)

# Events after which the job holds no place at the API any more, and those after which no
# POST of its body is in the air.
FREES_PLACE = (Finished, Lost, TimedOut, Rejected, NotSubmitted)
FREES_BODY = (Submitted, Rejected, NotSubmitted)
# Which jobs a claim picks: those of lapsed runners, or open ones.
TAKEOVER = "j.status = 'held' AND j.owner <> %(me)s AND r.lease_until < now()"
OPEN = "j.status = 'open'"
# How often an intent waiting for a place or for its body looks again (seconds).
WAIT_PAUSE = 0.2


# Letting go of a held job (its row, if this runner still holds it with its token).
_HELD_BY_ME = "WHERE batch = %s AND job = %s AND owner = %s AND token = %s"
_CLOSE: LiteralString = "UPDATE kb_jobs SET status = 'closed' " + _HELD_BY_ME
_RELEASE: LiteralString = "UPDATE kb_jobs SET status = 'open', owner = NULL " + _HELD_BY_ME

# A POST must leave within this share of a lease after its fence check (the rest is margin
# for a slow send and for clocks that drift).
SEND_WITHIN = 0.5


@dataclass(frozen=True, slots=True)
class Claim:
    """A job this runner now holds, with its fencing token; `takeover` when another
    runner held it before and its lease lapsed."""

    job: str
    token: int
    takeover: bool


@dataclass(frozen=True, slots=True)
class BatchCounts:
    """Where the batch's jobs are, seen from one runner."""

    open: int
    held_alive: int  # by other runners whose lease runs
    held_expired: int  # by runners whose lease lapsed: to take over
    mine: int

    @property
    def others_working(self) -> bool:
        return self.held_alive > 0


class _Wait(Exception):
    """Rolls an intent's transaction back: no place or its body is in the air elsewhere."""


def body_key(body: Any) -> str:
    """The in-air key of a request body: sha256 of its canonical JSON (a listed job does not
    say its model, so the model is not part of it)."""
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


class Coordinator:
    """One runner's side of a shared batch (`batch` is its location, `account` the API
    origin and account the unknown-POST rule is kept per)."""

    def __init__(
        self, db: Database, *, batch: str, account: str, concurrency: int, lease: float,
        clock: Clock, runner_id: uuid.UUID | None = None,
        keep_waiting: Callable[[], bool] = lambda: True,
    ) -> None:
        self._keep_waiting = keep_waiting  # False: an intent waiting for a place gives up
        self.db = db
        self.batch = batch
        self.account = account
        self.concurrency = concurrency
        self.lease = lease
        self.id = runner_id or uuid.uuid4()
        self._clock = clock
        self._tokens: dict[str, int] = {}
        self._send_by: dict[str, float] = {}  # job -> monotonic deadline of its POST
        self.lister = False

    # -- the runner -------------------------------------------------------------------------

    async def register(self) -> None:
        """Add this runner with a fresh lease."""
        async def work(conn: psycopg.AsyncConnection[Any]) -> None:
            await conn.execute(
                "INSERT INTO kb_runners (id, batch, host, pid, lease_until) VALUES "
                "(%s, %s, %s, %s, now() + make_interval(secs => %s)) ON CONFLICT (id) DO "
                "UPDATE SET lease_until = EXCLUDED.lease_until",
                (self.id, self.batch, socket.gethostname(), os.getpid(), self.lease))
        await self.db.transaction(work)

    async def heartbeat(self) -> None:
        """Renew this runner's lease (and the lister lease, when held)."""
        async def work(conn: psycopg.AsyncConnection[Any]) -> None:
            await conn.execute("UPDATE kb_runners SET lease_until = now() + "
                               "make_interval(secs => %s) WHERE id = %s", (self.lease, self.id))
            if self.lister:
                await conn.execute("UPDATE kb_listers SET lease_until = now() + "
                                   "make_interval(secs => %s) WHERE account = %s AND owner = %s",
                                   (self.lease, self.account, self.id))
        await self.db.transaction(work)

    async def keep_alive(self) -> None:
        """Heartbeat every third of the lease until cancelled."""
        while True:
            await self._clock.sleep(self.lease / 3)
            await self.heartbeat()

    async def leave(self) -> None:
        """This runner ends: jobs it holds but did not finish go back to open, its lease
        ends now (nobody waits for it), the lister lease is given up."""
        async def work(conn: psycopg.AsyncConnection[Any]) -> None:
            await conn.execute("UPDATE kb_jobs SET status = 'open', owner = NULL WHERE "
                               "batch = %s AND owner = %s AND status = 'held'",
                               (self.batch, self.id))
            await conn.execute("UPDATE kb_runners SET lease_until = now(), ended_at = now() "
                               "WHERE id = %s", (self.id,))
            await conn.execute("DELETE FROM kb_listers WHERE account = %s AND owner = %s",
                               (self.account, self.id))
        await self.db.transaction(work)
        self._tokens.clear()

    async def take_lister(self) -> bool:
        """Become the account's lister if nobody's lease holds it; whether we are."""
        async def work(conn: psycopg.AsyncConnection[Any]) -> bool:
            cur = await conn.execute(
                "INSERT INTO kb_listers (account, owner, lease_until) VALUES "
                "(%s, %s, now() + make_interval(secs => %s)) ON CONFLICT (account) DO UPDATE "
                "SET owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until "
                "WHERE kb_listers.lease_until < now() OR kb_listers.owner = EXCLUDED.owner "
                "RETURNING owner", (self.account, self.id, self.lease))
            return await cur.fetchone() is not None
        self.lister = await self.db.transaction(work)
        return self.lister

    # -- claims -----------------------------------------------------------------------------

    async def add_jobs(self, jobs: Sequence[str]) -> None:
        """Make sure every job of the manifest has its row (in manifest order)."""
        async def work(conn: psycopg.AsyncConnection[Any]) -> None:
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO kb_jobs (batch, job, position) VALUES (%s, %s, %s) "
                    "ON CONFLICT DO NOTHING", [(self.batch, j, n) for n, j in enumerate(jobs)])
        await self.db.transaction(work)

    async def reopen(self, jobs: Sequence[str]) -> int:
        """Closed jobs that have work left (a run starting decides which) become open."""
        async def work(conn: psycopg.AsyncConnection[Any]) -> int:
            cur = await conn.execute(
                "UPDATE kb_jobs SET status = 'open', owner = NULL WHERE batch = %s AND "
                "status = 'closed' AND job = ANY(%s)", (self.batch, list(jobs)))
            return cur.rowcount
        return await self.db.transaction(work)

    async def claim(self, limit: int, *, takeovers: int = 0) -> list[Claim]:
        """Jobs for this runner: up to `takeovers` of runners whose lease lapsed (they may
        hold places at the API: taking them over is what frees those, so a runner takes
        them even when it holds all it would claim), then up to `limit` open ones, in
        manifest order."""
        claims: list[Claim] = []
        if takeovers > 0:
            claims += await self.db.transaction(lambda conn: self._pick(conn, TAKEOVER,
                                                                        takeovers))
        if limit > 0:
            claims += await self.db.transaction(lambda conn: self._pick(conn, OPEN, limit))
        for claim in claims:
            self._tokens[claim.job] = claim.token
        return claims

    async def _pick(
        self, conn: psycopg.AsyncConnection[Any], which: str, limit: int
    ) -> list[Claim]:
        cur = await conn.execute(
            "WITH picked AS (SELECT j.job, j.status = 'held' AS takeover FROM kb_jobs j "
            "LEFT JOIN kb_runners r ON r.id = j.owner WHERE j.batch = %(b)s AND " + which +
            " ORDER BY j.position LIMIT %(n)s FOR UPDATE OF j SKIP LOCKED) "
            "UPDATE kb_jobs j SET status = 'held', owner = %(me)s, "
            "token = nextval('kb_tokens') FROM picked WHERE j.batch = %(b)s AND "
            "j.job = picked.job RETURNING j.job, j.token, picked.takeover",
            {"b": self.batch, "me": self.id, "n": limit})
        return [Claim(job, token, takeover) for job, token, takeover in await cur.fetchall()]

    async def close(self, job: str) -> None:
        """This runner is done with `job` (for now): nobody claims it again in this session
        of the batch; a no-op when the job is no longer ours."""
        await self._let_go(job, _CLOSE)

    async def release(self, job: str) -> None:
        """Hand `job` back unstarted (a drain): open for any runner."""
        await self._let_go(job, _RELEASE)

    async def _let_go(self, job: str, update: LiteralString) -> None:
        """Run `update` on the job's row if this runner still holds it with its token."""
        token = self._tokens.pop(job, None)
        self._send_by.pop(job, None)
        if token is None:
            return

        async def work(conn: psycopg.AsyncConnection[Any]) -> None:
            await conn.execute(update, (self.batch, job, self.id, token))
        await self.db.transaction(work)

    async def counts(self) -> BatchCounts:
        async def work(conn: psycopg.AsyncConnection[Any]) -> BatchCounts:
            cur = await conn.execute(
                "SELECT count(*) FILTER (WHERE j.status = 'open'), "
                "count(*) FILTER (WHERE j.status = 'held' AND j.owner <> %(me)s AND "
                "r.lease_until >= now()), "
                "count(*) FILTER (WHERE j.status = 'held' AND j.owner <> %(me)s AND "
                "r.lease_until < now()), "
                "count(*) FILTER (WHERE j.status = 'held' AND j.owner = %(me)s) "
                "FROM kb_jobs j LEFT JOIN kb_runners r ON r.id = j.owner "
                "WHERE j.batch = %(b)s", {"b": self.batch, "me": self.id})
            row = await cur.fetchone()
            assert row is not None
            return BatchCounts(*(int(n) for n in row))
        return await self.db.transaction(work)

    async def events_of(self, jobs: Sequence[str]) -> list[Event]:
        """The recorded events of `jobs`, in order (read after claiming them)."""
        async def work(conn: psycopg.AsyncConnection[Any]) -> list[Event]:
            cur = await conn.execute("SELECT line FROM kb_events WHERE batch = %s AND "
                                     "job = ANY(%s) ORDER BY seq", (self.batch, list(jobs)))
            return list(decode_rows(await cur.fetchall()))
        return await self.db.transaction(work)

    async def events_of_batch(self) -> list[Event]:
        """Every event of the batch, in order."""
        async def work(conn: psycopg.AsyncConnection[Any]) -> list[Event]:
            cur = await conn.execute("SELECT line FROM kb_events WHERE batch = %s ORDER BY seq",
                                     (self.batch,))
            return list(decode_rows(await cur.fetchall()))
        return await self.db.transaction(work)

    async def job_ids(self) -> set[str]:
        """Every jobId the batch has recorded (a listing must never adopt one of them)."""
        async def work(conn: psycopg.AsyncConnection[Any]) -> set[str]:
            cur = await conn.execute("SELECT DISTINCT line->>'jobId' FROM kb_events WHERE "
                                     "batch = %s AND line->>'jobId' IS NOT NULL", (self.batch,))
            return {row[0] for row in await cur.fetchall()}
        return await self.db.transaction(work)

    # -- fenced writes ----------------------------------------------------------------------

    async def check_fence(self, job: str) -> None:
        """FencedError unless this runner still holds `job` with its token; checked right
        before a POST leaves (the slot of money). The lease is renewed in the same
        transaction, under the job's row lock: a runner back from a pause whose job nobody
        took over goes on, and nobody can take the job over for a whole lease after this
        check — the POST that follows is this runner's to make."""
        async def work(conn: psycopg.AsyncConnection[Any]) -> None:
            await self._locked_row(conn, job)
            await conn.execute("UPDATE kb_runners SET lease_until = now() + "
                               "make_interval(secs => %s) WHERE id = %s", (self.lease, self.id))
        started = self._clock.monotonic()  # before the renewal: the deadline errs early
        await self.db.transaction(work)
        self._send_by[job] = started + self.lease * SEND_WITHIN

    def still_holds(self, job: str) -> None:
        """FencedError unless the POST of `job` leaves within `SEND_WITHIN` of a lease after
        its `check_fence`, by this process's monotonic clock (which runs on while the
        process is stopped). Called right before each attempt's bytes go out: a runner
        paused between the check and the send (SIGSTOP, a suspended VM) must not post a
        job another runner may have taken over and reconciled meanwhile."""
        if self._clock.monotonic() > self._send_by.get(job, float("-inf")):
            raise FencedError(f"{job}: not posted: too long since this runner's check of it "
                              "(paused?); another runner may hold it now")

    async def record(self, event: Event) -> None:
        """Write `event` if this runner still holds its job; an intent first waits for a
        place in the batch and for its body to be free on the account.

        Raises FencedError when the job was taken over; SharedLedgerError when the ledger
        stays unreachable.
        """
        event_id = uuid.uuid4()  # the same id on every try: a lost commit is not doubled
        while True:
            try:
                await self.db.transaction(lambda conn: self._write(conn, event, event_id))
                return
            except _Wait:
                if not self._keep_waiting():
                    raise FencedError(f"{event.job}: not posted, this runner is stopping "
                                      "(its intent waited for a place)") from None
                await self._clock.sleep(WAIT_PAUSE)

    async def _locked_row(self, conn: psycopg.AsyncConnection[Any], job: str) -> bool:
        """Lock the job's row; its in_flight flag. FencedError when it is not ours."""
        token = self._tokens.get(job)
        cur = await conn.execute("SELECT owner, token, in_flight FROM kb_jobs WHERE batch = %s "
                                 "AND job = %s FOR UPDATE", (self.batch, job))
        row = await cur.fetchone()
        if token is None or row is None or row[0] != self.id or row[1] != token:
            self._tokens.pop(job, None)
            raise FencedError(f"{job}: another runner took this job over; this runner's "
                              "record of it was refused")
        return bool(row[2])

    async def _write(
        self, conn: psycopg.AsyncConnection[Any], event: Event, event_id: uuid.UUID
    ) -> None:
        in_flight = await self._locked_row(conn, event.job)
        if isinstance(event, Intended):
            await self._take_place(conn, event, in_flight)
        elif isinstance(event, FREES_PLACE) and in_flight:
            await conn.execute("UPDATE kb_jobs SET in_flight = false WHERE batch = %s AND "
                               "job = %s", (self.batch, event.job))
        if isinstance(event, FREES_BODY):
            await conn.execute("DELETE FROM kb_posts_in_air WHERE batch = %s AND job = %s",
                               (self.batch, event.job))
        await conn.execute(INSERT_EVENT, event_row(self.batch, event, event_id))

    async def _take_place(
        self, conn: psycopg.AsyncConnection[Any], event: Intended, in_flight: bool
    ) -> None:
        if not in_flight:
            await conn.execute("SELECT 1 FROM kb_batches WHERE location = %s FOR UPDATE",
                               (self.batch,))
            cur = await conn.execute("SELECT count(*) FROM kb_jobs WHERE batch = %s AND "
                                     "in_flight", (self.batch,))
            row = await cur.fetchone()
            if row is not None and int(row[0]) >= self.concurrency:
                raise _Wait
        cur = await conn.execute(
            "INSERT INTO kb_posts_in_air (account, body_sha256, batch, job) VALUES "
            "(%s, %s, %s, %s) ON CONFLICT (account, body_sha256) DO UPDATE SET since = now() "
            "WHERE kb_posts_in_air.batch = EXCLUDED.batch AND kb_posts_in_air.job = "
            "EXCLUDED.job RETURNING job",
            (self.account, body_key(event.body), self.batch, event.job))
        if await cur.fetchone() is None:
            raise _Wait  # its body's fate is unknown elsewhere on this account
        if not in_flight:
            await conn.execute("UPDATE kb_jobs SET in_flight = true WHERE batch = %s AND "
                               "job = %s", (self.batch, event.job))
