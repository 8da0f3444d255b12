"""`GET /v1/jobs`: query parsing, filters and keyset pagination, as pure functions.

Jobs are listed newest first. A pagination token remembers the sequence number of the last
job handed out, so jobs created while a client pages never shift later pages. The
`empty_page` fault answers a page with no jobs but a token (the API's docstring allows it);
the token then marks that an empty page was just served, so the next page is never empty
again and pagination always ends.

A listing reads jobs lazily, newest first, and stops as soon as it has a page and knows
whether another follows, or once `older_may_match` says no older job can pass the date
filters: a short `updatedAfter`/`createdAfter` window costs what it returns.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

STATUSES = frozenset(
    {"pending", "queued", "warming-up", "in-progress", "finalizing"}
    | {"success", "failure", "canceled"}
)
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50


class QueryError(ValueError):
    """A list query the API would refuse with 400; the message says why."""


@dataclass(frozen=True, slots=True)
class ListQuery:
    """A parsed `GET /v1/jobs` query. Dates are unix seconds."""

    page_size: int = DEFAULT_PAGE_SIZE
    status: str | None = None
    types: frozenset[str] | None = None
    created_after: float | None = None
    updated_after: float | None = None
    before_seq: int | None = None
    after_empty: bool = False


def encode_token(before_seq: int, after_empty: bool) -> str:
    """An opaque cursor for the page after the job numbered `before_seq`."""
    raw = json.dumps({"b": before_seq, "e": int(after_empty)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_token(token: str) -> tuple[int, bool]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return int(data["b"]), bool(data["e"])
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise QueryError("Invalid paginationToken.") from exc


def _date(params: Mapping[str, str], name: str) -> float | None:
    value = params.get(name)
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError as exc:
        raise QueryError(f"{name} must be an ISO 8601 date, got {value!r}.") from exc


def _page_size(params: Mapping[str, str]) -> int:
    raw = params.get("pageSize", str(DEFAULT_PAGE_SIZE))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise QueryError(f"pageSize must be an integer within 1..{MAX_PAGE_SIZE}, got {raw!r}.")
    return int(raw)


def parse_query(params: Mapping[str, str]) -> ListQuery:
    """Parse and check the query string; raises QueryError with the API's reasons."""
    status = params.get("status")
    if status is not None and status not in STATUSES:
        raise QueryError(f"status must be one of {sorted(STATUSES)}, got {status!r}.")
    # `types` (comma format) overrides `type`, as the SDK docstring says.
    raw_types = params.get("types") or params.get("type")
    types = frozenset(t for t in raw_types.split(",") if t) if raw_types else None
    filtered = status is not None or types is not None or "workflowId" in params
    if "createdAfter" in params and filtered:
        # Those filters sort by update date on the real API, which refuses the combination.
        raise QueryError("createdAfter cannot be combined with status, type, types or "
                         "workflowId: use updatedAfter instead.")
    before, after_empty = (None, False)
    if params.get("paginationToken"):
        before, after_empty = _decode_token(params["paginationToken"])
    return ListQuery(
        page_size=_page_size(params),
        status=status,
        types=types,
        created_after=_date(params, "createdAfter"),
        updated_after=_date(params, "updatedAfter"),
        before_seq=before,
        after_empty=after_empty,
    )


@dataclass(frozen=True, slots=True)
class Listed:
    """What the filters need to know about one job."""

    seq: int
    status: str
    job_type: str
    created_unix: float
    updated_unix: float


def matches(job: Listed, query: ListQuery) -> bool:
    """Whether `job` passes the query's filters (not the cursor)."""
    if query.status is not None and job.status != query.status:
        return False
    if query.types is not None and job.job_type not in query.types:
        return False
    if query.created_after is not None and job.created_unix <= query.created_after:
        return False
    return query.updated_after is None or job.updated_unix > query.updated_after


def older_may_match(query: ListQuery, created_bound: float, update_bound: float) -> bool:
    """Whether any job may still pass the date filters, given the latest creation and the
    latest possible update (unix seconds) of every job not yet looked at."""
    if query.created_after is not None and created_bound <= query.created_after:
        return False
    return query.updated_after is None or update_bound > query.updated_after


def paginate(
    newest_first: Iterable[Listed], query: ListQuery, empty_page: bool
) -> tuple[list[int], str | None]:
    """The sequence numbers on this page and the next token (None on the last page).

    `empty_page` is the fault decision for this request; it is ignored right after an
    injected empty page and when nothing is left to list. Reads at most one job past
    the page from `newest_first`.
    """
    remaining: list[Listed] = []
    for job in newest_first:
        if (query.before_seq is None or job.seq < query.before_seq) and matches(job, query):
            remaining.append(job)
            if len(remaining) > query.page_size:
                break
    if empty_page and remaining and not query.after_empty:
        before = query.before_seq if query.before_seq is not None else remaining[0].seq + 1
        return [], encode_token(before, after_empty=True)
    page = remaining[: query.page_size]
    if len(remaining) > query.page_size:
        return [job.seq for job in page], encode_token(page[-1].seq, after_empty=False)
    return [job.seq for job in page], None
