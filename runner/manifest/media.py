"""What a local input file is, from its first bytes, not from its name.

A `.png` that holds an MP4, or `notes.txt` given as a start image, would be uploaded and
then fail (and maybe be billed) at the API. The formats the Kling models take are told by
their magic numbers: PNG, JPEG, WebP and GIF images; MP4/MOV (ISO base media, `ftyp`) and
WebM videos.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePath

HEAD_BYTES = 32  # enough for every signature below

# format -> (kind, what to call it, the extensions that name it)
FORMATS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "png": ("image", "a PNG image", (".png",)),
    "jpeg": ("image", "a JPEG image", (".jpg", ".jpeg")),
    "webp": ("image", "a WebP image", (".webp",)),
    "gif": ("image", "a GIF image", (".gif",)),
    "mp4": ("video", "an MP4/MOV video", (".mp4", ".m4v", ".mov")),
    "webm": ("video", "a WebM video", (".webm", ".mkv")),
}
_WANTED = {"image": "a PNG, JPEG, WebP or GIF image", "video": "an MP4, MOV or WebM video"}
# Old QuickTime files may start with another top-level atom than `ftyp`.
_QUICKTIME_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


_SIGNATURES: tuple[tuple[str, Callable[[bytes], bool]], ...] = (
    ("png", lambda h: h.startswith(b"\x89PNG\r\n\x1a\n")),
    ("jpeg", lambda h: h.startswith(b"\xff\xd8\xff")),
    ("webp", lambda h: h[:4] == b"RIFF" and h[8:12] == b"WEBP"),
    ("gif", lambda h: h[:6] in (b"GIF87a", b"GIF89a")),
    ("mp4", lambda h: h[4:8] == b"ftyp" or h[4:8] in _QUICKTIME_ATOMS),
    ("webm", lambda h: h.startswith(b"\x1a\x45\xdf\xa3")),  # EBML (WebM, Matroska)
)


def media_format(head: bytes) -> str | None:
    """The format (a key of FORMATS) the file's first bytes show, or None."""
    return next((name for name, matches in _SIGNATURES if matches(head)), None)


def _describe_unknown(head: bytes) -> str:
    if not head:
        return "it is empty"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "its first bytes are no image or video format"
    return "it holds text"


def content_problem(head: bytes, kind: str, name: str) -> tuple[str, str] | None:
    """(message, hint) when the file `name` starting with `head` is not a `kind`
    ("image"/"video") the API takes, or its name says another format than its bytes."""
    suffix = PurePath(name).suffix.lower()
    found = media_format(head)
    if found is None or FORMATS[found][0] != kind:
        what = _describe_unknown(head) if found is None else f"it is {FORMATS[found][1]}"
        return (f"{name!r} is not {'an image' if kind == 'image' else 'a video'} the API "
                f"takes: {what}"), f"give {_WANTED.get(kind, kind)}"
    named = next((f for f, (_, _, exts) in FORMATS.items() if suffix in exts), None)
    if named is not None and named != found:
        right = FORMATS[found][2][0]
        return (f"{name!r} is named as {FORMATS[named][1]} but holds {FORMATS[found][1]}",
                f"rename it to {right}")
    return None
