"""Where a batch lives in object storage: `s3://BUCKET/PREFIX`, parsed and checked.

The location is the batch's identity (the ledger names batches by it), so it has one
spelling: `str()` is `s3://bucket/prefix` with no trailing slash and no doubled slashes,
whatever the user typed. Every object of the batch is a key under the prefix (`key`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from runner.errors import UsageError

SCHEME = "s3://"
# S3's rules for new buckets: 3-63 characters, lowercase letters, digits, dots and hyphens,
# starting and ending with a letter or digit, not shaped like an IP address.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_SHAPED = re.compile(r"\d+\.\d+\.\d+\.\d+")
_MAX_KEY = 1024  # S3's limit on a key, in UTF-8 bytes
_HINT = "write it as s3://BUCKET/PREFIX, e.g. s3://my-videos/batches/spring"


def is_object_store_url(text: str) -> bool:
    """True when `text` names an object-store location (`s3://…`) rather than a folder."""
    return text.lower().startswith(SCHEME)


@dataclass(frozen=True, slots=True)
class S3Location:
    """A bucket and a prefix inside it (`""` for the bucket's top; never a trailing `/`)."""

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, text: str) -> S3Location:
        """`s3://bucket/prefix/` → S3Location("bucket", "prefix"). UsageError names what is
        wrong: another scheme, no bucket, a bucket name S3 refuses, `.`/`..` segments, a
        query or fragment."""
        if not is_object_store_url(text):
            raise UsageError(f"{text!r} is not an object-store location", hint=_HINT)
        rest = text[len(SCHEME):]
        if "?" in rest or "#" in rest:
            raise UsageError(f"{text!r}: an object-store location takes no query or fragment",
                             hint=_HINT)
        bucket, _, raw_prefix = rest.partition("/")
        problem = bucket_problem(bucket)
        if problem is not None:
            raise UsageError(f"{text!r}: {problem}", hint=_HINT)
        segments = [s for s in raw_prefix.split("/") if s]
        if any(s in {".", ".."} for s in segments):
            raise UsageError(f"{text!r}: the prefix may not hold '.' or '..' segments",
                             hint=_HINT)
        location = cls(bucket, "/".join(segments))
        if len(location.key("videos/x.mp4").encode("utf-8")) > _MAX_KEY - 200:
            raise UsageError(f"{text!r}: the prefix is too long for S3 keys",
                             hint="keep it under 800 bytes")
        return location

    def key(self, name: str) -> str:
        """The object key of `name` (a path relative to the prefix, e.g. `videos/a.mp4`)."""
        name = name.lstrip("/")
        return f"{self.prefix}/{name}" if self.prefix else name

    def relative(self, key: str) -> str:
        """The inverse of `key`: a key under the prefix, relative to it. ValueError when
        the key is not under the prefix."""
        if not self.prefix:
            return key
        head = self.prefix + "/"
        if not key.startswith(head):
            raise ValueError(f"{key!r} is not under {self}")
        return key[len(head):]

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}" if self.prefix else f"{SCHEME}{self.bucket}"


def bucket_problem(name: str) -> str | None:
    """Why S3 would refuse `name` as a bucket name, or None when it is a valid one."""
    if not name:
        return "no bucket name after s3://"
    if len(name) < 3 or len(name) > 63:
        return f"bucket name {name!r} must be 3 to 63 characters long"
    if not _BUCKET.fullmatch(name):
        return (f"bucket name {name!r} may hold only lowercase letters, digits, '.' and '-', "
                "and must start and end with a letter or digit")
    if ".." in name or ".-" in name or "-." in name:
        return f"bucket name {name!r} may not have '..', '.-' or '-.'"
    if _IP_SHAPED.fullmatch(name):
        return f"bucket name {name!r} may not look like an IP address"
    return None
