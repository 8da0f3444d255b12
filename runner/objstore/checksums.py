"""The checks an upload must pass, as pure functions of what was sent and what the store says.

S3 reports a SHA-256 checksum in base64: of the whole object for a single PUT, and for a
multipart upload the "composite" one — the SHA-256 of the parts' binary digests, in part
order — which AWS writes with a `-N` suffix (N parts) and some servers without it.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence

SHA256_META = "sha256"  # user metadata key (x-amz-meta-sha256): the file's sha256, hex


def b64_digest(digest: bytes) -> str:
    """A binary digest the way S3 spells checksums (base64)."""
    return base64.b64encode(digest).decode("ascii")


def b64_of_hex(hex_digest: str) -> str:
    """A hex sha256 (as the ledger records it) the way S3 spells checksums."""
    return b64_digest(bytes.fromhex(hex_digest))


def composite_checksum(part_digests: Sequence[bytes]) -> str:
    """The checksum S3 reports for a multipart upload of parts with these SHA-256 digests."""
    return b64_digest(hashlib.sha256(b"".join(part_digests)).digest())


def stored_object_problem(
    *, size: int, sha256: str, stored_size: int, metadata: Mapping[str, str],
    stored_checksum: str | None, expected_checksum: str,
) -> str | None:
    """Why the stored object is not the file sent, or None when every check the store allows
    agrees: its size, the sha256 in its metadata, and its own checksum when it reports one
    (`expected_checksum`: the whole-object or composite checksum of what was sent)."""
    if stored_size != size:
        return f"the store holds {stored_size} bytes, the file has {size}"
    meta = metadata.get(SHA256_META)
    if meta != sha256:
        return f"the stored object's sha256 metadata is {meta!r}, the file's is {sha256}"
    if stored_checksum is not None:
        reported = stored_checksum.split("-", 1)[0]
        if reported != expected_checksum:
            return (f"the store's SHA-256 checksum is {stored_checksum}, "
                    f"{expected_checksum} was sent")
    return None
