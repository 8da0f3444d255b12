"""The Scenario API client: one method per endpoint, domain objects in and out.

Money is spent at the generate POST, so that call never retries a request that may have
reached the server (runner/api/failures.py); every other call retries transient failures with the
SDK's backoff, and a 429 pauses the whole run through a shared `Pacer` (runner/api/backoff.py).
Sending, credentials and retries live in runner/api/transport.py; JSON parsing in
runner/api/wire.py.

Credentials go only to the API's own origin. Signed download URLs and upload part URLs are
fetched by runner.api.downloads and runner.api.uploads on the bare session, without them.
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import random as _random
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, TypeVar

import aiohttp

from runner.api.auth import Credentials, credentials_from_env, ensure_anonymous_session
from runner.api.backoff import Pacer, RetryPolicy
from runner.api.paths import jobs_query, path_segment
from runner.api.transport import USER_AGENT, ApiTransport, TransportSettings
from runner.api.wire import (
    UploadPart,
    UploadState,
    UploadTicket,
    WireFormatError,
    parse_asset,
    parse_assets,
    parse_created_asset_id,
    parse_estimate,
    parse_job_envelope,
    parse_job_page,
    parse_parallel_job_cap,
    parse_submission,
    parse_upload_state,
    parse_upload_ticket,
)
from runner.clock import REAL_CLOCK, Clock
from runner.domain import RemoteAsset, RemoteJob, Submission
from runner.errors import OutcomeUnknownError, PermanentApiError

__all__ = [
    "DEFAULT_BASE_URL",
    "USER_AGENT",
    "Credentials",
    "ScenarioClient",
    "UploadPart",
    "UploadState",
    "UploadTicket",
    "credentials_from_env",
    "ensure_anonymous_session",
    "jobs_query",
    "path_segment",
]

DEFAULT_BASE_URL = "https://api.cloud.scenario.com/v1"
BULK_ASSETS = 200  # most asset ids one get-bulk request takes (docs/api.md §4.4)
_T = TypeVar("_T")


class ScenarioClient:
    """The Scenario API (docs/api.md) for one run, over an injected aiohttp session.

    Every method raises the errors of runner/errors.py: AuthError (401/403), CreditError
    (402 or a credit message), PermanentApiError (other 4xx, malformed answers),
    RateLimitedError / TransientApiError once retries are spent, and, for `generate` only,
    OutcomeUnknownError. Timeouts are in seconds: `connect_timeout` to open a connection,
    `request_timeout` for each read of the answer.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        credentials: Credentials,
        *,
        policy: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen, so sharing it is safe
        pacer: Pacer | None = None,
        clock: Clock = REAL_CLOCK,
        random: Callable[[], float] = _random.random,
        request_timeout: float = 60.0,
        connect_timeout: float = 5.0,
    ) -> None:
        settings = TransportSettings(
            policy=policy,
            pacer=pacer if pacer is not None else Pacer(clock.monotonic),
            clock=clock,
            random=random,
            request_timeout=request_timeout,
            connect_timeout=connect_timeout,
        )
        self.clock = clock
        self._transport = ApiTransport(session, base_url, credentials, settings)
        self._label = f"{base_url.rstrip('/')!r}, {credentials!r}"
        # Asset ids belong to a project, and API keys are project-scoped: a short one-way
        # hash of the credentials tells caches of two accounts apart without keeping them.
        self.account = hashlib.sha256(credentials.authorization.encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"ScenarioClient({self._label})"

    @property
    def origin(self) -> str:
        """scheme://host[:port] of the API: the only place credentials are sent."""
        return str(self._transport.origin)

    # -- endpoints -------------------------------------------------------------------------

    async def generate(
        self, model: str, body: Mapping[str, Any], *,
        before_send: Callable[[], None] | None = None,
    ) -> Submission:
        """POST /generate/custom/{model}: create (and pay for) one job.

        Retried only when nothing can have been created (429, connection refused). Raises
        OutcomeUnknownError when the request may have created a job whose answer was lost.
        `before_send` runs right before each attempt leaves (a shared batch's last check).
        """
        path = f"generate/custom/{path_segment(model)}"
        payload = await self._send("POST", path, body=body, creates_job=True,
                                   before_send=before_send)
        return _parse(parse_submission, payload, "POST", path, creates_job=True)

    async def estimate(self, model: str, body: Mapping[str, Any]) -> float:
        """The creative-unit cost of `body` by the API's dry run (HTTP 269); nothing is run."""
        path = f"generate/custom/{path_segment(model)}"
        status, payload = await self._send_with_status(
            "POST", path, query={"dryRun": "true"}, body=body
        )
        if status != 269:
            # A plain 2xx means the server ran the request for real: say so loudly.
            raise PermanentApiError(
                f"POST {path}?dryRun=true: expected HTTP 269, got {status} — the API may "
                "have created a job; check the job list",
                status=status,
                body=payload,
                method="POST",
                url=path,
            )
        return _parse(parse_estimate, payload, "POST", path)

    async def get_job(self, job_id: str) -> RemoteJob:
        """GET /jobs/{id}: the job's current state."""
        path = f"jobs/{path_segment(job_id)}"
        payload = await self._send("GET", path)
        return _parse(parse_job_envelope, payload, "GET", path)

    def list_jobs(
        self,
        *,
        created_after: str | None = None,
        updated_after: str | None = None,
        status: str | None = None,
        types: Sequence[str] = ("custom",),
        page_size: int = 100,
    ) -> AsyncIterator[RemoteJob]:
        """Every job matching the filters, page after page (GET /jobs).

        Follows `nextPaginationToken` through empty pages until it is absent (the SDK stops
        at the first empty page). With `created_after`, `types` and `status` are applied
        client-side because the API refuses them together (docs/api.md §3.4).
        """
        query, type_filter, status_filter = jobs_query(
            created_after=created_after,
            updated_after=updated_after,
            status=status,
            types=types,
            page_size=page_size,
        )
        return self._iterate_jobs(query, type_filter, status_filter)

    async def cancel_job(self, job_id: str) -> RemoteJob:
        """POST /jobs/{id}/action {"action":"cancel"}; PermanentApiError if refused."""
        path = f"jobs/{path_segment(job_id)}/action"
        payload = await self._send("POST", path, body={"action": "cancel"})
        return _parse(parse_job_envelope, payload, "POST", path)

    async def get_asset(self, asset_id: str) -> RemoteAsset:
        """GET /assets/{id}: status, size and a fresh signed download URL."""
        path = f"assets/{path_segment(asset_id)}"
        payload = await self._send("GET", path)
        return _parse(parse_asset, payload, "GET", path)

    async def get_assets(self, asset_ids: Sequence[str]) -> list[RemoteAsset]:
        """POST /assets/get-bulk: up to 200 assets (fresh signed URLs) in one request."""
        if not 1 <= len(asset_ids) <= BULK_ASSETS:
            raise ValueError(f"get_assets takes 1..{BULK_ASSETS} ids, got {len(asset_ids)}")
        path = "assets/get-bulk"
        payload = await self._send("POST", path, body={"assetIds": list(asset_ids)})
        return _parse(parse_assets, payload, "POST", path)

    async def parallel_job_cap(self, team_id: str) -> int | None:
        """GET /teams/{id}/limits: the plan's cap on custom jobs in flight, if it says."""
        path = f"teams/{path_segment(team_id)}/limits"
        payload = await self._send("GET", path)
        return _parse(parse_parallel_job_cap, payload, "GET", path)

    async def create_image_asset(self, name: str, data: bytes) -> str:
        """POST /assets with the image as a base64 data URL (< 6 MB); returns the asset id."""
        mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
        image = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
        payload = await self._send("POST", "assets", body={"name": name, "image": image})
        return _parse(parse_created_asset_id, payload, "POST", "assets")

    async def create_upload(
        self, *, file_name: str, content_type: str, size: int, parts: int, kind: str
    ) -> UploadTicket:
        """POST /uploads: start a multipart upload of `size` bytes in `parts` parts."""
        body = {
            "fileName": file_name,
            "contentType": content_type,
            "fileSize": size,
            "parts": parts,
            "kind": kind,
        }
        payload = await self._send("POST", "uploads", body=body)
        return _parse(parse_upload_ticket, payload, "POST", "uploads")

    async def complete_upload(self, upload_id: str) -> None:
        """POST /uploads/{id}/action {"action":"complete"} once every part is PUT."""
        path = f"uploads/{path_segment(upload_id)}/action"
        await self._send("POST", path, body={"action": "complete"})

    async def get_upload(self, upload_id: str) -> UploadState:
        """GET /uploads/{id}: `imported` (with the asset id), `failed`, or still working."""
        path = f"uploads/{path_segment(upload_id)}"
        payload = await self._send("GET", path)
        return _parse(parse_upload_state, payload, "GET", path)

    # -- machinery -------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        creates_job: bool = False,
        before_send: Callable[[], None] | None = None,
    ) -> Any:
        answer = await self._transport.call(
            method, path, query=query, body=body, creates_job=creates_job,
            before_send=before_send,
        )
        return answer.payload

    async def _send_with_status(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> tuple[int, Any]:
        answer = await self._transport.call(method, path, query=query, body=body)
        return answer.status, answer.payload

    async def _iterate_jobs(
        self, query: dict[str, str], type_filter: frozenset[str] | None, status: str | None
    ) -> AsyncIterator[RemoteJob]:
        token: str | None = None
        seen: set[str] = set()
        while True:
            page_query = {**query, "paginationToken": token} if token else query
            payload = await self._send("GET", "jobs", query=page_query)
            page = _parse(lambda p: parse_job_page(p, type_filter), payload, "GET", "jobs")
            for job in page.jobs:
                if status is None or job.raw_status == status:
                    yield job
            if page.next_token is None:
                return
            if page.next_token in seen:
                # A server that hands back a cursor again (A, A or A, B, A) would keep us
                # here forever.
                raise PermanentApiError(
                    f"GET jobs: pagination token {page.next_token!r} repeated"
                )
            seen.add(page.next_token)
            token = page.next_token


def _parse(
    parser: Callable[[Any], _T],
    payload: Any,
    method: str,
    path: str,
    *,
    creates_job: bool = False,
) -> _T:
    """Run a wire parser; a malformed 2xx body becomes the right API error."""
    try:
        return parser(payload)
    except WireFormatError as exc:
        if creates_job:
            # A 2xx means the job exists, but we cannot read its id: reconcile, never re-post.
            raise OutcomeUnknownError(
                f"{method} {path}: unreadable success answer ({exc})",
                body=payload,
                method=method,
                url=path,
            ) from exc
        raise PermanentApiError(
            f"{method} {path}: unexpected answer ({exc})", body=payload, method=method, url=path
        ) from exc
