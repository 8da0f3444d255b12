"""Local asset files named in params: they must exist, be regular files inside the manifest's
folder, fit the schema's limits, and hold what their field takes (`media.py`).

Checked once per distinct path: a dataset of 100,000 jobs usually shares a few images.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path

from runner.manifest.media import HEAD_BYTES, content_problem
from runner.schemas import AssetInput

_OUTSIDE_HINT = ("move it into the manifest's folder, or pass --allow-outside-files to send "
                 "files from elsewhere")


@dataclass(frozen=True, slots=True)
class _Seen:
    """What one path turned out to be: its size and first bytes, or why it cannot be read."""

    size: int = 0
    head: bytes = b""
    failure: str | None = None


class FileChecker:
    """Answers "what is wrong with this local asset file?", reading each path once.

    `allow_outside` lets paths resolve outside the manifest's folder (symlinks included):
    without it a manifest cannot make kling-batch upload `/etc/shadow` or `~/.ssh/id_rsa`.
    """

    def __init__(self, *, allow_outside: bool = False) -> None:
        self._seen: dict[Path, _Seen] = {}
        self._outside_of: dict[tuple[Path, Path], str | None] = {}
        self._allow_outside = allow_outside

    def problem(self, asset: AssetInput, base_dir: Path) -> tuple[str, str | None] | None:
        """(message, hint) for a local asset input, or None when it is fine or an asset id."""
        if asset.is_asset_id:
            return None
        if "://" in asset.value or asset.value.startswith("data:"):
            hint = "download it first; asset inputs are an asset_... id or a local file"
            return f"{asset.value[:60]!r} is not a local file", hint
        path = asset.local_path(base_dir)
        outside = self._outside(path, base_dir)
        if outside is not None:
            return outside, _OUTSIDE_HINT
        seen = self._read(path)
        if seen.failure is not None:
            return seen.failure, "paths are relative to the manifest's folder"
        return _limits_problem(asset, path, seen)

    def _outside(self, path: Path, base_dir: Path) -> str | None:
        if self._allow_outside:
            return None
        key = (path, base_dir)
        if key not in self._outside_of:
            resolved = path.resolve()
            inside = resolved.is_relative_to(base_dir.resolve())
            self._outside_of[key] = None if inside else (
                f"{str(path)!r} resolves to {str(resolved)!r}, outside the manifest's folder")
        return self._outside_of[key]

    def _read(self, path: Path) -> _Seen:
        if path not in self._seen:
            self._seen[path] = _look(path)
        return self._seen[path]


def _limits_problem(asset: AssetInput, path: Path, seen: _Seen) -> tuple[str, str | None] | None:
    suffix = path.suffix.lower()
    if asset.extensions and suffix not in asset.extensions:
        return f"{suffix or 'no extension'} is not accepted", ", ".join(asset.extensions)
    if asset.max_bytes is not None and seen.size > asset.max_bytes:
        limit = asset.max_bytes / (1024 * 1024)
        return f"file is {seen.size / (1024 * 1024):.1f} MiB; at most {limit:g} MiB", None
    return content_problem(seen.head, asset.kind, asset.value)


def _look(path: Path) -> _Seen:
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            return _Seen(failure=f"{str(path)!r} is not a file")
        with path.open("rb") as handle:
            head = handle.read(HEAD_BYTES)
    except FileNotFoundError:
        return _Seen(failure=f"file {str(path)!r} not found")
    except OSError as exc:
        return _Seen(failure=f"cannot read {str(path)!r}: {exc.strerror or exc}")
    return _Seen(info.st_size, head)
