"""Real, playable H.264 MP4s for simulated jobs, encoded with PyAV.

Every successful job yields a different little clip: its tint and the speed of a moving bar
come from a hash of the asset id, so a human (or a checksum) can tell two outputs apart.
Encoding is synchronous and CPU bound; callers run it off the event loop.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

_CHUNK = 1 << 20
# A top-level MP4 box header is 4 bytes of size and 4 of type; "free" boxes are skipped by
# every player, which lets a benchmark file grow to any size and stay playable.
_BOX_HEADER = 8
_LARGE_BOX_HEADER = 16
_MAX_SMALL_BOX = 2**32 - 1


@dataclass(frozen=True, slots=True)
class VideoSpec:
    """What to encode: frame size in pixels, frames per second and length in seconds."""

    width: int = 320
    height: int = 180
    fps: int = 12
    seconds: float = 2.0
    pad_bytes: int = 0


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """Media facts about an encoded file, as the asset's `properties` report them."""

    size: int
    width: int
    height: int
    fps: int
    frames: int
    duration: float


def clip_look(key: str) -> tuple[int, int, int]:
    """The (U, V, bar speed) of the clip for `key`: stable, and different per key."""
    digest = hashlib.sha256(key.encode()).digest()
    return 64 + digest[0] % 128, 64 + digest[1] % 128, 1 + digest[2] % 7


def _luma_plane(width: int, height: int, stride: int, frame_index: int, speed: int) -> bytes:
    # A gradient with a bright moving bar; every line is identical, so build one and repeat.
    bar_start = (frame_index * speed * 4) % width
    row = bytearray((16 + (x * 200) // max(width - 1, 1)) for x in range(width))
    for x in range(bar_start, min(bar_start + width // 10 + 1, width)):
        row[x] = 235
    row.extend(b"\x00" * (stride - width))
    return bytes(row) * height


def encode_clip(path: Path, spec: VideoSpec, key: str) -> VideoInfo:
    """Encode an H.264 (yuv420p) MP4 with its index first (+faststart) to `path`."""
    u_value, v_value, speed = clip_look(key)
    frames = max(1, round(spec.seconds * spec.fps))
    with av.open(str(path), mode="w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=spec.fps)
        stream.width, stream.height = spec.width, spec.height
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, spec.fps)
        stream.options = {"preset": "ultrafast", "tune": "zerolatency"}
        for index in range(frames):
            frame = av.VideoFrame(spec.width, spec.height, "yuv420p")
            luma, chroma_u, chroma_v = frame.planes
            luma.update(_luma_plane(spec.width, spec.height, luma.line_size, index, speed))
            chroma_u.update(bytes([u_value]) * chroma_u.buffer_size)
            chroma_v.update(bytes([v_value]) * chroma_v.buffer_size)
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    if spec.pad_bytes > 0:
        append_free_box(path, spec.pad_bytes)
    return VideoInfo(
        size=path.stat().st_size,
        width=spec.width,
        height=spec.height,
        fps=spec.fps,
        frames=frames,
        duration=frames / spec.fps,
    )


def append_free_box(path: Path, total_bytes: int) -> None:
    """Grow `path` by about `total_bytes` with a `free` box, written in chunks (flat memory)."""
    large = total_bytes + _BOX_HEADER > _MAX_SMALL_BOX
    header_size = _LARGE_BOX_HEADER if large else _BOX_HEADER
    box_size = max(total_bytes, header_size)
    if large:
        header = (1).to_bytes(4, "big") + b"free" + box_size.to_bytes(8, "big")
    else:
        header = box_size.to_bytes(4, "big") + b"free"
    remaining = box_size - header_size
    chunk = b"\x00" * _CHUNK
    with path.open("ab") as handle:
        handle.write(header)
        while remaining > 0:
            step = min(remaining, _CHUNK)
            handle.write(chunk[:step])
            remaining -= step


def probe_duration(path: Path) -> float | None:
    """The duration in seconds of a media file, or None when it cannot be read as one."""
    try:
        with av.open(str(path)) as container:
            if container.duration is not None:
                return float(container.duration) / av.time_base
            stream = container.streams.video[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
    except (av.FFmpegError, IndexError, ValueError, OSError):
        return None
    return None
