"""Matching POSTs whose answer was lost to the jobs the API actually created: pure parts.

A generate request whose fate is unknown left an `intent` in the ledger: its canonical body
and when it was sent. The API's job list (`GET /v1/jobs?createdAfter=…`) holds every job
created since, with the request body as `metadata.input`. An intent adopts a listed job whose
body matches and that nobody has claimed (no jobId in the ledger, no other intent). Identical
bodies — repeats of one prompt, which these models cannot tell apart by a seed — are matched
by count: oldest intent first, oldest job first, one job each.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from runner.canonical import canonical_json
from runner.clock import format_iso, parse_iso
from runner.domain import RemoteJob

# A job's createdAt comes from the server's clock and an intent's ts from ours: allow skew.
CLOCK_SKEW = timedelta(seconds=120)


def body_fingerprint(model: str, body: Mapping[str, Any]) -> str:
    """sha256 of the model id and the canonical body."""
    return hashlib.sha256(f"{model}\n{canonical_json(body)}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Intent:
    """A POST whose answer was lost: which job, which model and body, sent when."""

    job: str
    model: str
    body_json: str
    ts: str


def listing_start(intents: Sequence[Intent]) -> str:
    """The `createdAfter` to list from: the oldest intent, less the clock skew."""
    return format_iso(min(parse_iso(i.ts) for i in intents) - CLOCK_SKEW)


def _candidate_key(job: RemoteJob) -> str | None:
    return canonical_json(job.input) if job.input is not None else None


def match_intents(
    intents: Sequence[Intent], jobs: Iterable[RemoteJob], claimed: set[str]
) -> dict[str, RemoteJob]:
    """Assign to each intent at most one unclaimed listed job with its body; by count.

    Returns {manifest job id: adopted job}. `claimed` (jobIds known to the ledger) is not
    modified; the caller adds the adopted ones.

    The API's job does not say which model it ran, so a body that unresolved intents of
    *different* models share is ambiguous: none of those intents adopts anything (see
    `ambiguous_intents`; the runner never lets such POSTs be in the air together).
    """
    unsure = {i.job for i in ambiguous_intents(intents)}
    intents = [i for i in intents if i.job not in unsure]
    pool: dict[str, list[RemoteJob]] = defaultdict(list)
    for job in jobs:
        key = _candidate_key(job)
        if key is not None and job.job_id not in claimed:
            pool[key].append(job)
    for candidates in pool.values():
        candidates.sort(key=_created_order)
    adopted: dict[str, RemoteJob] = {}
    taken: set[str] = set()
    for intent in sorted(intents, key=lambda i: (i.ts, i.job)):
        for job in pool.get(intent.body_json, ()):
            if job.job_id in taken or not _fits(intent, job):
                continue
            adopted[intent.job] = job
            taken.add(job.job_id)
            break
    return adopted


def ambiguous_intents(intents: Sequence[Intent]) -> list[Intent]:
    """Intents whose body another intent of a different model shares."""
    models: dict[str, set[str]] = defaultdict(set)
    for intent in intents:
        models[intent.body_json].add(intent.model)
    return [i for i in intents if len(models[i.body_json]) > 1]


_EPOCH = datetime.min.replace(tzinfo=UTC)


def _created_order(job: RemoteJob) -> tuple[datetime, str]:
    # Instants, not strings: a listing may mix precisions ("…00Z", "…00.500Z") and offsets.
    return (parse_iso(job.created_at) if job.created_at else _EPOCH, job.job_id)


def _fits(intent: Intent, job: RemoteJob) -> bool:
    if job.model_id is not None and job.model_id != intent.model:
        return False
    if job.created_at is None:
        return True
    return parse_iso(job.created_at) >= parse_iso(intent.ts) - CLOCK_SKEW
