"""Cancelling a shared batch's jobs that were never submitted (`cancel TARGET --ledger ID…`).

A pending job may sit unclaimed or be held by a runner about to post it. Cancelling it is
one transaction on its row: lock it, read the job's events, and only if nothing was ever
posted for it (no intent whose fate is unknown, no jobId) close the row, clear its owner,
give it a new fencing token and append the ledger's local `canceled`. A runner holding the
job then finds its token stale at its next write — the intent before the POST — and drops
the job without posting (`FencedError`); a runner whose intent got in first wins, and the
job counts as in flight (cancel asks the API once its jobId is known). Canceled means
canceled: no runner claims a closed row, and a later `run --retry-failed --only ID` reopens
it as a folder's batch does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from runner.batch import local_cancellation
from runner.cluster.store import INSERT_EVENT, decode_rows, event_row
from runner.domain import JobState
from runner.ledger import replay


def cancel_unsubmitted(
    conn: psycopg.Connection[Any], location: str, jobs: Sequence[str]
) -> list[str]:
    """Record `canceled` for each of `jobs` that was never posted, fencing off any runner
    holding it; the jobs cancelled (the others were posted meanwhile, or are done). A
    closed row is only "done for this session" (a halted run closes what it left): its
    events decide, and a cancelled job stays closed when the next run reopens the rest."""
    cancelled = []
    for job in jobs:
        with conn.transaction():
            row = conn.execute("SELECT 1 FROM kb_jobs WHERE batch = %s AND job = %s "
                               "FOR UPDATE", (location, job)).fetchone()
            if row is None:  # not a job of the batch
                continue
            lines = conn.execute("SELECT line FROM kb_events WHERE batch = %s AND job = %s "
                                 "ORDER BY seq", (location, job)).fetchall()
            record = replay(decode_rows(lines)).get(job)
            if record is not None and (record.state is not JobState.PENDING
                                       or record.unresolved_intent):
                continue
            conn.execute("UPDATE kb_jobs SET status = 'closed', owner = NULL, in_flight = "
                         "false, token = nextval('kb_tokens') WHERE batch = %s AND job = %s",
                         (location, job))
            conn.execute(INSERT_EVENT, event_row(location, local_cancellation(job)))
            cancelled.append(job)
    return cancelled
