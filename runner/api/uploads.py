"""Local files → Scenario asset ids, uploaded once and cached by content hash.

Small images (< 6 MB) go through `POST /v1/assets` as base64; videos and larger files
through the multipart `/v1/uploads` flow (docs/api.md §4.1, §4.2): create the upload, PUT
each part to its presigned URL *without* credentials (another host), complete, then poll
until `imported` gives the asset id.

The cache is a JSON file (e.g. `<output>/.cache/assets.json`) keyed by API origin, account
(a one-way hash of the credentials), kind and content sha256, so a file used by many jobs,
or again on a re-run, is uploaded once; origin and account are part of the key because
asset ids from one API, simulator run or project mean nothing to another. Concurrent
requests for the same content share one upload.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import mimetypes
import os
from pathlib import Path
from typing import Any

import aiohttp
import anyio
from yarl import URL

from runner.api.backoff import RetryPolicy, next_retry_delay
from runner.api.client import USER_AGENT, ScenarioClient, UploadTicket, ensure_anonymous_session
from runner.errors import PermanentApiError, TransientApiError, UsageError

log = logging.getLogger(__name__)

IMAGE_ASSET_LIMIT = 6_000_000  # bytes; the docs say "< 6MB": stay under either reading
MIN_PART_SIZE = 5 * 1024 * 1024  # the S3 rule: every part but the last is at least 5 MiB
PART_SIZE = 8 * 1024 * 1024  # bytes per PUT: few requests, and one part in memory at a time
MAX_PARTS = 10_000  # the S3 limit on parts per upload
_HASH_BLOCK = 1 << 20
_PUT_POLICY = RetryPolicy()


def part_size_for(size: int) -> int:
    """Bytes per part for a file of `size` bytes: PART_SIZE, grown to stay within MAX_PARTS."""
    return max(PART_SIZE, MIN_PART_SIZE, math.ceil(size / MAX_PARTS))


def part_ranges(size: int, part_size: int) -> list[tuple[int, int]]:
    """(offset, length) of each part, in order; only the last may be shorter."""
    return [(start, min(part_size, size - start)) for start in range(0, size, part_size)]


def uses_multipart(kind: str, size: int) -> bool:
    """Whether a file goes through /v1/uploads (videos, and images of 6 MB or more)."""
    return kind != "image" or size >= IMAGE_ASSET_LIMIT


def cache_key(origin: str, kind: str, sha256: str) -> str:
    """The cache entry of some content, for one API origin and asset kind."""
    return f"{origin} {kind} sha256:{sha256}"


def content_type_for(path: Path, kind: str) -> str:
    """The MIME type from the file name, else a generic one for the kind."""
    guessed = mimetypes.guess_type(path.name)[0]
    return guessed or {"video": "video/mp4", "image": "image/png"}.get(
        kind, "application/octet-stream"
    )


def hash_file(path: Path) -> tuple[str, int]:
    """(sha256 hex, size in bytes) of a file, read in blocks (flat memory). Blocking."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def file_identity(path: Path) -> tuple[str, int, int]:
    """(resolved path, size, mtime in ns): a changed file gets hashed again. Blocking."""
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def read_range(path: Path, offset: int, length: int) -> bytes:
    """`length` bytes of `path` from `offset`. Blocking."""
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read(length)


def load_cache(cache_file: Path) -> dict[str, dict[str, Any]]:
    """The cache's entries by key; empty when missing or unreadable (it is only a cache).

    Entries without a string `assetId` are dropped. Blocking.
    """
    try:
        raw = json.loads(cache_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable asset cache %s: %s", cache_file, exc)
        return {}
    entries = raw.get("assets", {}) if isinstance(raw, dict) else {}
    return {
        key: value
        for key, value in entries.items()
        if isinstance(value, dict) and isinstance(value.get("assetId"), str)
    }


def write_cache(cache_file: Path, entries: dict[str, dict[str, Any]]) -> None:
    """Replace the cache file atomically (temp file, fsync, rename). Blocking."""
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    temp = cache_file.with_name(f".{cache_file.name}.tmp-{os.getpid()}")
    body = json.dumps({"version": 1, "assets": entries}, indent=1, sort_keys=True)
    try:
        with temp.open("w", encoding="utf-8") as handle:
            handle.write(body + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, cache_file)
    except BaseException:
        temp.unlink(missing_ok=True)  # a full disk must not keep a half-written copy
        raise


class AssetUploader:
    """Turns local files into asset ids, uploading each distinct content once.

    `session` is the bare session (no default credentials: part URLs are other hosts);
    `poll_interval` is in seconds, between `GET /v1/uploads/{id}` while the upload imports.
    """

    def __init__(
        self,
        client: ScenarioClient,
        session: aiohttp.ClientSession,
        cache_file: Path,
        *,
        poll_interval: float = 0.5,
        max_polls: int = 1200,
    ) -> None:
        ensure_anonymous_session(session)
        self._client = client
        self._session = session
        self._cache_file = cache_file
        self._sleep = client.clock.sleep
        self._poll_interval = poll_interval
        self._max_polls = max_polls
        self._entries: dict[str, dict[str, Any]] | None = None
        self._cache_lock = anyio.Lock()
        self._locks: dict[str, anyio.Lock] = {}
        self._fingerprints: dict[tuple[str, int, int], tuple[str, int]] = {}
        self.uploads = 0  # uploads actually sent (the rest were cache hits)

    async def asset_id_for(self, path: Path, kind: str) -> str:
        """The asset id of the file at `path` (kind "image" or "video"), uploading if needed.

        Raises UsageError if the file is missing or empty, PermanentApiError if the API
        refuses or fails the upload, and the client's errors for transport trouble.
        """
        sha256, size = await self._fingerprint(path)
        key = cache_key(f"{self._client.origin}#{self._client.account}", kind, sha256)
        # One lock per content: concurrent jobs naming the same file share one upload.
        async with self._locks.setdefault(key, anyio.Lock()):
            entries = await self._load()
            if (hit := entries.get(key)) is not None:
                return str(hit["assetId"])
            asset_id = await self._upload(path, kind, size)
            self.uploads += 1
            await self._remember(key, {"assetId": asset_id, "file": path.name, "bytes": size})
            return asset_id

    async def content_hash(self, path: Path) -> str:
        """The sha256 (hex) of the file at `path`, as the cache keys it (hashed once per
        path, size and mtime). Raises UsageError if the file is missing or empty."""
        return (await self._fingerprint(path))[0]

    async def _fingerprint(self, path: Path) -> tuple[str, int]:
        try:
            memo = await anyio.to_thread.run_sync(file_identity, path)
        except FileNotFoundError:
            raise UsageError(
                f"{path}: file not found", hint="check the path in the manifest"
            ) from None
        if memo not in self._fingerprints:
            self._fingerprints[memo] = await anyio.to_thread.run_sync(hash_file, path)
        sha256, size = self._fingerprints[memo]
        if size == 0:
            raise UsageError(f"{path}: the file is empty")
        return sha256, size

    async def _load(self) -> dict[str, dict[str, Any]]:
        if self._entries is None:
            self._entries = await anyio.to_thread.run_sync(load_cache, self._cache_file)
        return self._entries

    async def _remember(self, key: str, entry: dict[str, Any]) -> None:
        async with self._cache_lock:
            entries = await self._load()
            entries[key] = entry
            try:
                await anyio.to_thread.run_sync(write_cache, self._cache_file, dict(entries))
            except OSError as exc:
                # Only a cache: this run still knows the id; a later one uploads again.
                log.warning("the asset cache %s could not be written: %s", self._cache_file,
                            exc.strerror or exc)

    async def _upload(self, path: Path, kind: str, size: int) -> str:
        if not uses_multipart(kind, size):
            data = await anyio.to_thread.run_sync(path.read_bytes)
            return await self._client.create_image_asset(path.name, data)
        ranges = part_ranges(size, part_size_for(size))
        ticket = await self._client.create_upload(
            file_name=path.name,
            content_type=content_type_for(path, kind),
            size=size,
            parts=len(ranges),
            kind=kind,
        )
        _check_parts(ticket, len(ranges), path)
        for part, (offset, length) in zip(ticket.parts, ranges, strict=True):
            data = await anyio.to_thread.run_sync(read_range, path, offset, length)
            await self._put_part(part.url, data, f"{path} part {part.number}/{len(ranges)}")
        await self._client.complete_upload(ticket.upload_id)
        return await self._imported_asset(ticket.upload_id, path)

    async def _put_part(self, url: str, data: bytes, what: str) -> None:
        """PUT one part without credentials; retry network trouble, 408, 429 and 5xx."""
        attempts = _PUT_POLICY.max_attempts
        for attempt in range(attempts):
            status: int | None = None
            try:
                # encoded=True: a presigned URL must reach the store byte for byte. A fresh
                # BytesIO per attempt (it shares `data`, no copy) gives a Content-Length and
                # lets aiohttp send it in chunks without blocking the loop.
                async with self._session.put(
                    URL(url, encoded=True),
                    data=io.BytesIO(data),
                    headers={"User-Agent": USER_AGENT},
                ) as response:
                    status = response.status
                    if 200 <= status < 300:
                        return
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.info("upload of %s failed (attempt %d): %r", what, attempt + 1, exc)
            if status is not None and status < 500 and status not in (408, 429):
                raise PermanentApiError(f"upload of {what}: the store answered HTTP {status}")
            if attempt + 1 < attempts:
                await self._sleep(next_retry_delay(_PUT_POLICY, attempt, None, 0.0))
        raise TransientApiError(f"upload of {what} failed {attempts} times (last: {status})")

    async def _imported_asset(self, upload_id: str, path: Path) -> str:
        for _ in range(max(1, self._max_polls)):
            state = await self._client.get_upload(upload_id)
            if state.status == "imported" and state.entity_id:
                return state.entity_id
            if state.status in {"failed", "imported"}:
                reason = state.error or "imported without an asset id"
                raise PermanentApiError(f"upload {upload_id} of {path} failed: {reason}")
            await self._sleep(self._poll_interval)
        raise TransientApiError(
            f"upload {upload_id} of {path} was not imported after {self._max_polls} polls"
        )


def _check_parts(ticket: UploadTicket, expected: int, path: Path) -> None:
    numbers = [part.number for part in ticket.parts]
    if numbers != list(range(1, expected + 1)):
        raise PermanentApiError(
            f"upload {ticket.upload_id} of {path}: asked for {expected} part URLs, got {numbers}"
        )
