"""URL pieces of the API: one path parameter, and the `GET /v1/jobs` query (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

# The SDK's path-parameter quoting (docs/api.md §1.1): "/" is encoded.
_PATH_SAFE = "!$&'()*+,;=:@"


def path_segment(value: str) -> str:
    """One percent-encoded path parameter; empty and dot segments are refused (ValueError)."""
    if value in ("", ".", ".."):
        raise ValueError(f"invalid path parameter {value!r}")
    return quote(value, safe=_PATH_SAFE)


def jobs_query(
    *,
    created_after: str | None,
    updated_after: str | None,
    status: str | None,
    types: Sequence[str],
    page_size: int,
) -> tuple[dict[str, str], frozenset[str] | None, str | None]:
    """The `GET /v1/jobs` query, plus the type and status filters to apply client-side.

    The API accepts `createdAfter` only without `status`/`type`/`types` (docs/api.md §3.4), so with
    `created_after` those filters move to the client. `types` uses the comma format;
    `page_size` is clamped to the API's 1..100.
    """
    query = {"pageSize": str(max(1, min(page_size, 100)))}
    if updated_after is not None:
        query["updatedAfter"] = updated_after
    if created_after is not None:
        query["createdAfter"] = created_after
        return query, (frozenset(types) if types else None), status
    if types:
        query["types"] = ",".join(types)
    if status is not None:
        query["status"] = status
    return query, None, None
