"""Moving a file's bytes to the store and back, in bounded memory.

Below the multipart threshold a file is read whole (it is smaller than one part) and sent
in one PUT. Above it, one reader walks the file in order — hashing it whole as it goes —
and hands parts over a zero-buffer stream to `parts_in_flight` senders, so at most
`parts_in_flight + 1` parts are in memory however large the file. Each part carries its
own SHA-256 (`ChecksumSHA256`), which the store checks on arrival; the whole file's hash is
compared with the sha256 it was downloaded with before the upload is completed — a file
that changed on disk is never completed. Any failure or cancellation aborts the upload.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from io import BufferedReader
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import ObjectReceiveStream

from runner.api import part_ranges
from runner.errors import ObjectStoreError, UploadVerificationError
from runner.objstore.checksums import SHA256_META, b64_digest, b64_of_hex, composite_checksum

if TYPE_CHECKING:
    from runner.objstore.store import ObjectStore

log = logging.getLogger(__name__)
_READ_BACK_CHUNK = 1 << 20


async def send_file(
    store: ObjectStore, key: str, path: Path, *, size: int, sha256: str, content_type: str
) -> str:
    """Send the file; returns the checksum the store should report for it (whole-object
    for one PUT, composite for multipart). UploadVerificationError when the file on disk is
    not `size` bytes with `sha256` (nothing is left stored then)."""
    actual = (await anyio.Path(path).stat()).st_size
    if actual != size:
        raise UploadVerificationError(f"{path} has {actual} bytes, {size} were downloaded: "
                                      "not uploaded", key=key)
    if size < store.tuning.multipart_threshold:
        return await _send_whole(store, key, path, sha256=sha256, content_type=content_type)
    return await _send_parts(store, key, path, size=size, sha256=sha256,
                             content_type=content_type)


async def _send_whole(
    store: ObjectStore, key: str, path: Path, *, sha256: str, content_type: str
) -> str:
    data = await anyio.Path(path).read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise UploadVerificationError(f"{path} no longer has sha256 {sha256}: not uploaded",
                                      key=key)
    checksum = b64_of_hex(sha256)
    await store.call("PUT", key, lambda: store.client.put_object(
        Bucket=store.bucket, Key=key, Body=data, ContentType=content_type,
        ChecksumSHA256=checksum, ChecksumAlgorithm="SHA256",
        Metadata={SHA256_META: sha256}))
    return checksum


async def _send_parts(
    store: ObjectStore, key: str, path: Path, *, size: int, sha256: str, content_type: str
) -> str:
    created = await store.call("CreateMultipartUpload", key,
                               lambda: store.client.create_multipart_upload(
                                   Bucket=store.bucket, Key=key, ContentType=content_type,
                                   ChecksumAlgorithm="SHA256", Metadata={SHA256_META: sha256}))
    upload_id = created["UploadId"]
    try:
        parts = await _upload_parts(store, key, upload_id, path, size=size, sha256=sha256)
        await _complete(store, key, upload_id, parts, size=size, sha256=sha256)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await abort_upload(store, key, upload_id)
        raise
    return composite_checksum([digest for _, _, digest in parts])


async def abort_upload(store: ObjectStore, key: str, upload_id: str) -> None:
    """Abort a multipart upload (its parts are freed); a failure to is logged, not raised
    (the bucket's lifecycle rule for incomplete uploads is the last resort)."""
    try:
        await store.call("AbortMultipartUpload", key, lambda: store.client.abort_multipart_upload(
            Bucket=store.bucket, Key=key, UploadId=upload_id))
    except ObjectStoreError as exc:
        log.warning("could not abort the upload of %s: %s", key, exc)


async def _upload_parts(
    store: ObjectStore, key: str, upload_id: str, path: Path, *, size: int, sha256: str
) -> list[tuple[int, str, bytes]]:
    """(number, etag, sha256 digest) of every part, in order."""
    tuning = store.tuning
    whole = hashlib.sha256()
    done: dict[int, tuple[str, bytes]] = {}
    send, receive = anyio.create_memory_object_stream[tuple[int, bytes, bytes]](0)

    async def sender(parts: ObjectReceiveStream[tuple[int, bytes, bytes]]) -> None:
        async with parts:
            async for number, data, digest in parts:
                done[number] = (await _upload_part(store, key, upload_id, number,
                                                    data=data, digest=digest),
                                digest)
                del data

    try:
        async with anyio.create_task_group() as tg:
            for _ in range(tuning.parts_in_flight):
                tg.start_soon(sender, receive.clone())
            receive.close()
            async with send:
                await _read_parts(path, size, tuning.part_size, whole, send.send)
    except BaseExceptionGroup as group:
        raise first_error(group) from group
    if whole.hexdigest() != sha256:
        raise UploadVerificationError(f"{path} no longer has sha256 {sha256}: not uploaded",
                                      key=key)
    return [(n, *done[n]) for n in sorted(done)]


async def _read_parts(
    path: Path, size: int, part_size: int, whole: Any,
    send: Callable[[tuple[int, bytes, bytes]], Awaitable[None]],
) -> None:
    """Read the file's parts in order (each on a worker thread), hand each to `send`."""
    # Each part's buffer is allocated here, on the event loop's thread, and only filled on
    # a worker thread: buffers allocated by worker threads come from their own malloc
    # arenas, which keep what is freed in them, and the RSS then grew with the file.
    with path.open("rb") as fh:
        for number, (_offset, length) in enumerate(part_ranges(size, part_size), start=1):
            buffer = bytearray(length)
            digest = await anyio.to_thread.run_sync(_read_part, fh, buffer, whole)
            data = bytes(buffer)  # botocore streams bytes bodies (not bytearrays) in chunks
            del buffer
            await send((number, data, digest))
            del data


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error a failed group of part senders stands for: its first leaf that is not a
    cancellation (the others were cancelled because of it), else the group itself."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return first_error(exc)
        if isinstance(exc, Exception):
            return exc
    return group


def _read_part(fh: BufferedReader, buffer: bytearray, whole: Any) -> bytes:
    """Fill `buffer` with the file's next bytes (on a worker thread), fold them into the
    whole-file hash; the part's SHA-256 digest. UploadVerificationError if the file ends
    early."""
    view = memoryview(buffer)
    got = 0
    while got < len(buffer):
        n = fh.readinto(view[got:])
        if not n:
            raise UploadVerificationError(f"{fh.name} ended early: not uploaded")
        got += n
    whole.update(view)
    return hashlib.sha256(view).digest()


async def _upload_part(
    store: ObjectStore, key: str, upload_id: str, number: int, *, data: bytes,
    digest: bytes,
) -> str:
    checksum = b64_digest(digest)
    reply = await store.call(f"UploadPart {number}", key, lambda: store.client.upload_part(
        Bucket=store.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data,
        ChecksumSHA256=checksum, ChecksumAlgorithm="SHA256"))
    returned = reply.get("ChecksumSHA256")
    if returned is not None and returned != checksum:
        raise UploadVerificationError(f"part {number} of s3://{store.bucket}/{key} arrived as "
                                      f"{returned}, {checksum} was sent", key=key)
    return str(reply["ETag"])


async def _complete(
    store: ObjectStore, key: str, upload_id: str, parts: list[tuple[int, str, bytes]], *,
    size: int, sha256: str,
) -> None:
    """Complete the upload. A retry first looks whether the object is already there, whole
    (the first answer may have been lost after the store completed it): completing twice
    is not safe on every server."""
    listed: Any = [{"PartNumber": n, "ETag": etag, "ChecksumSHA256": b64_digest(digest)}
                   for n, etag, digest in parts]
    tried = False

    async def complete() -> None:
        nonlocal tried
        if tried:
            stored = await store.head(key)
            if stored is not None and (stored.size, stored.sha256) == (size, sha256):
                return  # completed by the attempt whose answer was lost
        tried = True
        await store.client.complete_multipart_upload(
            Bucket=store.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed})

    try:
        await store.call("CompleteMultipartUpload", key, complete)
    except ObjectStoreError as exc:
        # A retried complete whose first answer was lost may find the upload gone (404):
        # the object may well be whole — the verification that follows decides.
        if exc.status != 404 or not tried:
            raise


async def read_back_sha256(store: ObjectStore, key: str) -> str:
    """The sha256 (hex) of the stored object, streamed (flat memory)."""

    async def hashed() -> str:
        digest = hashlib.sha256()
        reply = await store.client.get_object(Bucket=store.bucket, Key=key)
        async with reply["Body"] as body:
            while chunk := await body.read(_READ_BACK_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    return await store.call("GET", key, hashed)


