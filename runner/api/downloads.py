"""Downloads: stream an asset's signed URL to disk, verify it, and place it atomically.

A file appears at its destination only complete and verified: bytes go to a temporary file
beside it (same directory, so the final rename is atomic), hashed while streaming, checked
against `Content-Length` and the asset's `properties.size`, fsynced, renamed with
`os.replace`, and the directory fsynced so the rename survives a crash. Memory stays flat:
chunks are buffered up to `_BLOCK` bytes and written (and hashed) on a worker thread.

The signed URL lives on another origin (the CDN), so it is fetched on the bare session,
without the API credentials. URLs expire: every attempt asks `GET /v1/assets/{id}` for a
fresh one, so a 403 (or any 4xx) from the CDN is answered by refreshing.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import secrets
import shutil
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import anyio
from yarl import URL

from runner.api.backoff import RetryPolicy, next_retry_delay
from runner.api.client import USER_AGENT, ScenarioClient, ensure_anonymous_session
from runner.domain import RemoteAsset
from runner.errors import LocalWriteError, PermanentApiError, TransientApiError
from runner.outdir import fsync_dir

log = logging.getLogger(__name__)

_BLOCK = 1 << 20  # bytes handed to the writer thread at once: few thread hops, flat memory
_POLICY = RetryPolicy()  # backoff between download attempts (not the API calls' policy)
# CDN statuses that mean "this URL no longer works": refresh it from the asset.
_REFRESH_STATUSES = frozenset({400, 401, 403, 404, 410})


@dataclass(frozen=True, slots=True)
class DownloadedFile:
    """A verified file on disk: where, its sha256 (hex) and its size in bytes."""

    path: Path
    sha256: str
    bytes: int


class _AttemptFailed(Exception):
    """One download attempt failed in a way a new attempt (with a fresh URL) may fix."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def expired(self) -> bool:
        return self.status in _REFRESH_STATUSES


def size_problem(received: int, content_length: int | None, asset_size: int | None) -> str | None:
    """Why `received` bytes are not the whole file, or None when every known size agrees."""
    if content_length is not None and received != content_length:
        return f"got {received} bytes, Content-Length said {content_length}"
    if asset_size is not None and received != asset_size:
        return f"got {received} bytes, the asset's properties.size is {asset_size}"
    return None


def part_path(dest: Path) -> Path:
    """A fresh temporary name beside `dest` (same directory, so the rename is atomic)."""
    return dest.parent / f".{dest.name}.part-{secrets.token_hex(6)}"


class _PartFile:
    """The temporary file of one attempt; sync methods, run on a worker thread.

    A failed write (disk full, read-only, no permission) raises LocalWriteError: the disk,
    not the network, so no new attempt can help until it is fixed. `needed` is the size
    being written, for the message.
    """

    def __init__(self, dest: Path, *, needed: int | None = None, keep_free: int = 0) -> None:
        self.path = part_path(dest)
        self._needed = needed
        self._keep_free = keep_free
        with self._writing():
            dest.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("xb")
        self._hash = hashlib.sha256()
        self.size = 0

    @contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise LocalWriteError(f"{self.path.parent} could not be written: "
                                  f"{exc.strerror or exc}", needed=self._needed,
                                  cause=exc) from exc

    def write(self, block: bytes) -> None:
        self._hash.update(block)
        with self._writing():
            if self._keep_free and shutil.disk_usage(self.path.parent).free - len(
                    block) < self._keep_free:
                # Never take the last bytes of the disk: the ledger needs them to record
                # what happened (a job's jobId, its outcome) more than this file does.
                raise OSError(errno.ENOSPC, f"less than {self._keep_free} bytes would be "
                              "left free")
            self._handle.write(block)
        self.size += len(block)

    def commit(self, dest: Path) -> str:
        """fsync, rename into `dest`, fsync the directory; returns the sha256 hex digest."""
        with self._writing():
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            os.replace(self.path, dest)
            fsync_dir(dest.parent)
        return self._hash.hexdigest()

    def discard(self) -> None:
        """Close and delete the temporary file (safe to call twice, and while cancelled).

        On a full disk closing flushes the last buffered bytes and fails too: the file is
        deleted all the same, or it would be left behind for ever."""
        try:
            self._handle.close()
        except OSError:
            pass
        finally:
            self.path.unlink(missing_ok=True)


AssetSource = Callable[[str], Awaitable[RemoteAsset]]


async def ready_asset(
    client: ScenarioClient,
    asset_id: str,
    *,
    poll_interval: float = 1.0,
    max_polls: int = 120,
    lookup: AssetSource | None = None,
) -> RemoteAsset:
    """The asset once its status is no longer `pending`, with a fresh signed URL.

    Raises PermanentApiError if the asset is in error or has no URL, TransientApiError if
    it is still pending after `max_polls` polls `poll_interval` seconds apart. `lookup`
    replaces `client.get_asset` (a batching `AssetLookup`, say).
    """
    get = lookup or client.get_asset
    for _ in range(max(1, max_polls)):
        asset = await get(asset_id)
        if asset.status != "pending":
            if asset.status == "error" or not asset.url:
                raise PermanentApiError(
                    f"asset {asset_id} cannot be downloaded (status {asset.status!r}, "
                    f"url {'present' if asset.url else 'missing'})"
                )
            return asset
        await client.clock.sleep(poll_interval)
    raise TransientApiError(
        f"asset {asset_id} is still pending after {max_polls} polls — try the download again"
    )


async def _stream(
    response: aiohttp.ClientResponse, part: _PartFile, chunk_size: int, limit: int | None
) -> None:
    buffer = bytearray()
    async for chunk in response.content.iter_chunked(chunk_size):
        buffer += chunk
        if limit is not None and part.size + len(buffer) > limit:
            raise _AttemptFailed(f"the body is longer than the expected {limit} bytes")
        if len(buffer) >= _BLOCK:
            await anyio.to_thread.run_sync(part.write, bytes(buffer))
            buffer.clear()
    if buffer:
        await anyio.to_thread.run_sync(part.write, bytes(buffer))


async def _fetch(
    session: aiohttp.ClientSession,
    asset: RemoteAsset,
    dest: Path,
    chunk_size: int,
    client_timeout: aiohttp.ClientTimeout,
    *,
    keep_free: int = 0,
) -> DownloadedFile:
    # encoded=True: a signed URL must reach the CDN byte for byte, never re-quoted.
    # identity: a compressed transfer would make Content-Length disagree with the file.
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    async with session.get(
        URL(asset.url, encoded=True), headers=headers, timeout=client_timeout
    ) as response:
        if response.status != 200:
            raise _AttemptFailed(f"the CDN answered HTTP {response.status}", status=response.status)
        length = response.content_length
        limit = max((n for n in (length, asset.size) if n is not None), default=None)
        # Created here, not on a thread: once it exists, the `finally` below must own it,
        # and a cancelled thread hop could leave it behind.
        part = _PartFile(dest, needed=limit, keep_free=keep_free)
        try:
            await _stream(response, part, chunk_size, limit)
            if (problem := size_problem(part.size, length, asset.size)) is not None:
                raise _AttemptFailed(f"truncated or wrong body: {problem}")
            digest = await anyio.to_thread.run_sync(part.commit, dest)
        finally:
            # On success the file was renamed away; otherwise (errors, cancellation) this
            # removes the partial file, synchronously so that cancellation cannot skip it.
            part.discard()
    return DownloadedFile(path=dest, sha256=digest, bytes=part.size)


async def download_asset(
    client: ScenarioClient,
    session: aiohttp.ClientSession,
    asset_id: str,
    dest: Path,
    *,
    attempts: int = 5,
    chunk_size: int = 1 << 16,
    read_timeout: float = 60.0,
    poll_interval: float = 1.0,
    lookup: AssetSource | None = None,
    known: RemoteAsset | None = None,
    keep_free: int = 0,
) -> DownloadedFile:
    """Download asset `asset_id` to `dest`, verified and atomically placed; the file never
    leaves less than `keep_free` bytes free on its disk.

    Each attempt fetches the asset (waiting while it is pending) for a fresh signed URL and
    streams it without credentials. An expired URL (403 and other 4xx) is refreshed at
    once; truncated bodies, 5xx and network errors back off and retry. After `attempts`
    failures raises PermanentApiError (the CDN kept refusing) or TransientApiError; a file
    that cannot be written (disk full, read-only) raises LocalWriteError at once. Never
    leaves a partial file at `dest`. `session` must not carry default credentials.
    `lookup` is how the asset (and its fresh URL) is fetched: `client.get_asset` by default;
    `known` is the asset as just looked up (its first attempt then asks nothing).
    """
    ensure_anonymous_session(session)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10.0, sock_read=read_timeout)
    failures: list[_AttemptFailed] = []
    for attempt in range(max(1, attempts)):
        if attempt == 0 and known is not None and known.status == "success" and known.url:
            asset = known
        else:
            asset = await ready_asset(client, asset_id, poll_interval=poll_interval,
                                      lookup=lookup)
        try:
            return await _fetch(session, asset, dest, chunk_size, timeout, keep_free=keep_free)
        except (aiohttp.ClientError, TimeoutError) as exc:
            failures.append(_AttemptFailed(f"{type(exc).__name__}: {exc}"))
        except _AttemptFailed as failure:
            failures.append(failure)
        log.info("download of %s failed (attempt %d): %s", asset_id, attempt + 1, failures[-1])
        if attempt + 1 < attempts and not failures[-1].expired:
            await client.clock.sleep(next_retry_delay(_POLICY, attempt, None, 0.0))
    raise _exhausted(asset_id, failures)


def _exhausted(asset_id: str, failures: list[_AttemptFailed]) -> Exception:
    last = failures[-1]
    message = f"download of asset {asset_id} failed {len(failures)} times; last: {last}"
    if all(f.expired for f in failures):
        return PermanentApiError(message + " — the CDN refused every fresh URL", status=last.status)
    return TransientApiError(message, status=last.status)
