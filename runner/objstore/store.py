"""The object store: one S3 client (aiobotocore) bound to a batch's bucket, with bounded
retries, verified uploads and the few reads `status`, `report` and the tests need.

Every upload is verified before it returns: the stored object's size, its `sha256`
metadata and the store's own SHA-256 checksum (sent with the PUT or with every part, and
reported back by HEAD with `ChecksumMode=ENABLED`) must match the file; a store that
reports no checksum has the object read back and hashed instead. An object that does not
match is deleted and `UploadVerificationError` raised. A multipart upload that fails or is
cancelled is aborted, so no orphan parts are left to bill.

Retries are ours, not botocore's (its client is built with one attempt): 5xx, 503 SlowDown,
429/408 and connection resets or timeouts are retried with the project's backoff
(`RetryPolicy`, injected clock), up to `max_attempts`, then `ObjectStoreError` says what
failed and how often. Anything else (403, 404 bucket …) fails at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError, HTTPClientError, IncompleteReadError
from botocore.exceptions import ConnectionError as BotoConnectionError

from runner.api import RetryPolicy, next_retry_delay
from runner.clock import REAL_CLOCK, Clock
from runner.errors import ObjectStoreError, UploadVerificationError, UsageError
from runner.objstore.checksums import SHA256_META, b64_of_hex, stored_object_problem
from runner.objstore.config import S3Config
from runner.objstore.location import S3Location
from runner.objstore.transfer import read_back_sha256, send_file

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

T = TypeVar("T")
MiB = 1024 * 1024
# Codes S3 (and S3-compatible servers) use for "try again", whatever the status.
_TRANSIENT_CODES = frozenset({"SlowDown", "RequestTimeout", "InternalError",
                              "ServiceUnavailable", "Throttling", "ThrottlingException",
                              "RequestLimitExceeded", "OperationAborted",
                              # a body damaged on the way (the store checked its checksum)
                              "BadDigest", "XAmzContentSHA256Mismatch", "InvalidDigest"})
# The transport failed (reset, refused, timed out, cut short): worth another attempt. Other
# botocore errors (bad parameters, no credentials) are bugs or config: they propagate.
_NETWORK_ERRORS = (HTTPClientError, BotoConnectionError, IncompleteReadError, aiohttp.ClientError,
                   asyncio.TimeoutError, ConnectionError)


@dataclass(frozen=True, slots=True)
class UploadTuning:
    """How uploads are cut and retried. Parts held per upload: at most `parts_in_flight + 1`
    (about twice that in bytes at the peak, with the HTTP layer's copies: ~90 MiB at the
    defaults, whatever the file's size); files of `multipart_threshold` bytes or more go
    multipart (S3's smallest part, the last one excepted, is 5 MiB; its most parts 10,000:
    80 GB at 8 MiB)."""

    part_size: int = 8 * MiB
    multipart_threshold: int = 16 * MiB
    parts_in_flight: int = 4
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(max_attempts=6))
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    # Also read every uploaded object back and hash it, even where the store reports a
    # checksum: for servers that echo the checksum sent instead of checking it (moto does;
    # AWS S3 refuses a body whose checksum does not match). Costs one download per upload.
    read_back: bool = False


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An object as the store reports it: `sha256` is its metadata's (hex, when written by
    kling-batch), `checksum` the store's own SHA-256 (base64) when it keeps one."""

    key: str
    size: int
    sha256: str | None = None
    checksum: str | None = None
    content_type: str | None = None


def is_transient(status: int | None, code: str | None) -> bool:
    """True for an answer worth retrying: 5xx, 408, 429, or a slow-down/timeout code."""
    if code in _TRANSIENT_CODES:
        return True
    return status is not None and (status >= 500 or status in {408, 429})


def client_error_parts(exc: ClientError) -> tuple[int | None, str]:
    """(HTTP status, S3 error code) of a botocore ClientError."""
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status, str(exc.response.get("Error", {}).get("Code", ""))


class ObjectStore:
    """The bucket of one location, through one client (`open_store` builds it)."""

    def __init__(
        self, client: S3Client, location: S3Location, *, tuning: UploadTuning | None = None,
        clock: Clock = REAL_CLOCK, rand: Callable[[], float] = random.random,
    ) -> None:
        self.location = location
        self.tuning = tuning or UploadTuning()
        self._client = client
        self._clock = clock
        self._rand = rand

    @property
    def bucket(self) -> str:
        return self.location.bucket

    async def call(self, what: str, key: str | None, op: Callable[[], Awaitable[T]]) -> T:
        """Run one S3 request (`op` builds it anew each time), retrying transient failures
        with backoff. ObjectStoreError once they are exhausted or for a refusal."""
        policy = self.tuning.retry
        for attempt in range(1, policy.max_attempts + 1):
            try:
                return await op()
            except ClientError as exc:
                status, code = client_error_parts(exc)
                if not is_transient(status, code) or attempt == policy.max_attempts:
                    raise ObjectStoreError(
                        f"{what} of s3://{self.bucket}/{key or ''} failed: {code or exc} "
                        f"(HTTP {status}){_after(attempt)}", key=key, status=status) from exc
            except _NETWORK_ERRORS as exc:
                if attempt == policy.max_attempts:
                    raise ObjectStoreError(
                        f"{what} of s3://{self.bucket}/{key or ''} failed: the store could "
                        f"not be reached ({type(exc).__name__}: {exc}){_after(attempt)}",
                        key=key) from exc
            await self._clock.sleep(next_retry_delay(policy, attempt - 1, None, self._rand()))
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def check_bucket(self) -> None:
        """A preflight before anything is sent: UsageError (exit 2) when the bucket does not
        exist or the credentials may not use it; ObjectStoreError when the store cannot be
        reached."""
        try:
            await self.call("HEAD bucket", None,
                            lambda: self._client.head_bucket(Bucket=self.bucket))
        except ObjectStoreError as exc:
            if exc.status in {400, 401, 403, 404}:
                raise UsageError(
                    f"{self.location}: the bucket {self.bucket!r} does not exist or these "
                    f"credentials may not use it (HTTP {exc.status})",
                    hint="check the bucket's name, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
                         "and AWS_ENDPOINT_URL") from exc
            raise

    async def upload_file(
        self, key: str, path: Path, *, size: int, sha256: str, content_type: str = "video/mp4"
    ) -> StoredObject:
        """Stream the file at `path` (`size` bytes, `sha256` hex, as verified on download) to
        `key` — one PUT below the multipart threshold, parts in flight bounded above it —
        then verify the stored object. UploadVerificationError (object removed) when the
        file or the object do not match; ObjectStoreError when the store fails."""
        expected = await send_file(self, key, path, size=size, sha256=sha256,
                                   content_type=content_type)
        return await self.verify(key, size=size, sha256=sha256, expected_checksum=expected)

    async def put_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> StoredObject:
        """Store `data` at `key` in one PUT (for metadata.jsonl, results.csv, report.html),
        verified like an upload."""
        sha = hashlib.sha256(data).hexdigest()
        await self.call("PUT", key, lambda: self._client.put_object(
            Bucket=self.bucket, Key=key, Body=data, ContentType=content_type,
            ChecksumSHA256=b64_of_hex(sha), ChecksumAlgorithm="SHA256",
            Metadata={SHA256_META: sha}))
        return await self.verify(key, size=len(data), sha256=sha, expected_checksum=b64_of_hex(sha))

    async def verify(
        self, key: str, *, size: int, sha256: str, expected_checksum: str
    ) -> StoredObject:
        """The stored object at `key`, checked against what was sent (see the module's
        docstring); a mismatch deletes it and raises UploadVerificationError."""
        stored = await self.head(key)
        if stored is None:
            raise UploadVerificationError(f"s3://{self.bucket}/{key} is missing after its "
                                          "upload", key=key)
        problem = stored_object_problem(
            size=size, sha256=sha256, stored_size=stored.size,
            metadata={SHA256_META: stored.sha256} if stored.sha256 else {},
            stored_checksum=stored.checksum, expected_checksum=expected_checksum)
        if problem is None and (stored.checksum is None or self.tuning.read_back):
            # No checksum kept by this store (or not trusted): read it back and hash it.
            got = await read_back_sha256(self, key)
            if got != sha256:
                problem = f"the stored bytes hash to {got}, the file to {sha256}"
        if problem is not None:
            await self.delete(key)
            raise UploadVerificationError(f"s3://{self.bucket}/{key} does not match the file "
                                          f"sent: {problem}; the object was removed", key=key)
        return stored

    async def head(self, key: str) -> StoredObject | None:
        """The object at `key` with its checksum, or None when there is none."""
        try:
            reply = await self.call("HEAD", key, lambda: self._client.head_object(
                Bucket=self.bucket, Key=key, ChecksumMode="ENABLED"))
        except ObjectStoreError as exc:
            if exc.status == 404:
                return None
            raise
        metadata = reply.get("Metadata") or {}
        return StoredObject(key=key, size=int(reply.get("ContentLength", 0)),
                            sha256=metadata.get(SHA256_META),
                            checksum=reply.get("ChecksumSHA256"),
                            content_type=reply.get("ContentType"))

    async def get_bytes(self, key: str) -> bytes:
        """The whole object at `key` (small ones: views, metadata). ObjectStoreError (status
        404) when there is none."""

        async def get() -> bytes:
            reply = await self._client.get_object(Bucket=self.bucket, Key=key)
            async with reply["Body"] as body:
                return await body.read()

        return await self.call("GET", key, get)

    async def list(self, prefix: str = "") -> list[StoredObject]:
        """Every object whose key starts with `prefix` (sizes only), in key order."""
        found: list[StoredObject] = []
        token: dict[str, Any] = {}
        while True:
            page = await self.call("LIST", prefix, partial(
                self._client.list_objects_v2, Bucket=self.bucket, Prefix=prefix, **token))
            found.extend(StoredObject(key=o["Key"], size=int(o.get("Size", 0)))
                         for o in page.get("Contents", []))
            if not page.get("IsTruncated"):
                return found
            token = {"ContinuationToken": page["NextContinuationToken"]}

    async def move(self, key: str, to: str) -> StoredObject:
        """Copy the object at `key` to `to` (server-side, metadata kept), check the copy's
        size and sha256 metadata against the original, then delete the original. Objects
        up to 5 GiB (S3's limit of one copy). ObjectStoreError when there is no object at
        `key`; UploadVerificationError (the copy removed) when the copy differs."""
        source = await self.head(key)
        if source is None:
            raise ObjectStoreError(f"s3://{self.bucket}/{key} is not there to move", key=key,
                                   status=404)
        await self.call("CopyObject", to, lambda: self._client.copy_object(
            Bucket=self.bucket, Key=to, CopySource={"Bucket": self.bucket, "Key": key},
            MetadataDirective="COPY", ChecksumAlgorithm="SHA256"))
        copy = await self.head(to)
        if copy is None or (copy.size, copy.sha256) != (source.size, source.sha256):
            await self.delete(to)
            raise UploadVerificationError(f"the copy of s3://{self.bucket}/{key} at {to} does "
                                          "not match it: removed", key=to)
        await self.delete(key)
        return copy

    async def delete(self, key: str) -> None:
        """Remove the object at `key` (nothing when there is none)."""
        await self.call("DELETE", key, lambda: self._client.delete_object(
            Bucket=self.bucket, Key=key))

    @property
    def client(self) -> S3Client:
        """The underlying aiobotocore client (for the multipart steps and benchmarks)."""
        return self._client


def _after(attempts: int) -> str:
    return f", after {attempts} attempts" if attempts > 1 else ""


def client_config(config: S3Config, tuning: UploadTuning) -> AioConfig:
    """botocore's settings: path-style for custom endpoints, one attempt (we retry), pool
    sized for the parts in flight, checksums only where a request asks for one (ours)."""
    return AioConfig(
        region_name=config.region,
        s3={"addressing_style": "path" if config.path_style else "auto"},
        retries={"total_max_attempts": 1},
        connect_timeout=tuning.connect_timeout, read_timeout=tuning.read_timeout,
        max_pool_connections=max(10, tuning.parts_in_flight * 4),
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


@asynccontextmanager
async def open_store(
    config: S3Config, location: S3Location, *, tuning: UploadTuning | None = None,
    clock: Clock = REAL_CLOCK,
) -> AsyncIterator[ObjectStore]:
    """An ObjectStore for `location`, its client (and connection pool) closed after the
    block. It holds only the AWS credentials of `config`: nothing of the Scenario API."""
    tuning = tuning or UploadTuning()
    session = get_session()
    async with session.create_client(
        "s3", endpoint_url=config.endpoint_url, region_name=config.region,
        aws_access_key_id=config.access_key_id,
        aws_secret_access_key=config.secret_access_key,
        aws_session_token=config.session_token, config=client_config(config, tuning),
    ) as client:
        yield ObjectStore(client, location, tuning=tuning, clock=clock)
