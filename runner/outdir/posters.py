"""Posters for the report's videos: each video's first frame, a small JPEG in DIR/posters/.

A poster is named after its video's content (`posters/<first 16 hex of sha256>.jpg`), so a
replaced video gets a new poster, identical videos share one, and a poster already there is
never made twice: refreshing the report during a run only decodes the new videos. A poster
that another writer put there first (the API's `firstFrame` image, saved at download time)
is used as it is. Where the frame cannot be decoded there is no poster and the page shows
the video's own first frame once it is asked to play; nothing fails.

PyAV decodes the first frame and encodes the JPEG (no image library needed); it is imported
on first use, so commands that draw no poster do not load it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import Any

from runner.ledger import AssetRecord
from runner.outdir.files import write_atomically

log = logging.getLogger(__name__)

POSTERS_DIR = "posters"
POSTER_WIDTH = 320  # pixels: a card's width; the height keeps the video's aspect ratio
_POSTER_NAME = re.compile(r"^[0-9a-f]{16}\.jpg$")


def poster_relpath(sha256: str) -> str:
    """Where the poster of a video with this sha256 goes, relative to DIR."""
    return f"{POSTERS_DIR}/{sha256[:16].lower()}.jpg"


def _poster_size(width: int, height: int) -> tuple[int, int]:
    w = min(POSTER_WIDTH, width - width % 2) or 2
    h = max(2, round(height * w / width / 2) * 2)
    return w, h


def _first_frame(video: Path) -> Any:
    import av

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            return frame
    return None


def poster_jpeg(video: Path) -> bytes | None:
    """The first frame of `video` as JPEG bytes, POSTER_WIDTH wide; None when the file
    holds no decodable video frame."""
    import av

    try:
        frame = _first_frame(video)
        if frame is None:
            return None
        width, height = _poster_size(frame.width, frame.height)
        scaled = frame.reformat(width=width, height=height, format="yuvj420p")
        codec = av.CodecContext.create("mjpeg", "w")
        codec.width, codec.height, codec.pix_fmt = width, height, "yuvj420p"
        codec.time_base = Fraction(1, 25)
        codec.options = {"qmin": "2", "qmax": "5"}  # a sharp still; a few KiB
        packets = [*codec.encode(scaled), *codec.encode(None)]
    except (av.FFmpegError, OSError, IndexError, ValueError) as exc:
        log.info("no poster for %s: %s", video, exc)
        return None
    return b"".join(bytes(p) for p in packets) or None


def ensure_posters(directory: Path, assets: Iterable[AssetRecord]) -> dict[str, str]:
    """Make the missing posters of `assets` (video files present under `directory`) and
    drop posters no asset uses any more; returns video path -> poster path (both relative
    to `directory`) for every video that has one."""
    folder = directory / POSTERS_DIR
    posters: dict[str, str] = {}
    for asset in assets:
        poster = poster_relpath(asset.sha256)
        target = directory / poster
        if not target.is_file():
            video = directory / asset.path
            jpeg = poster_jpeg(video) if video.is_file() else None
            if jpeg is None:
                continue
            folder.mkdir(exist_ok=True)
            write_atomically(target, [jpeg])
        posters[asset.path] = poster
    _prune(folder, {Path(p).name for p in posters.values()})
    return posters


def _prune(folder: Path, keep: set[str]) -> None:
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if _POSTER_NAME.match(path.name) and path.name not in keep:
            path.unlink(missing_ok=True)
