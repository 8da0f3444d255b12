"""Local asset files named in params: they must exist, be files, and fit the schema's limits.

Checked once per distinct path: a dataset of 100,000 jobs usually shares a few images.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from runner.schemas import AssetInput


class FileChecker:
    """Answers "what is wrong with this local asset file?", caching `stat` per path."""

    def __init__(self) -> None:
        self._sizes: dict[Path, int | str] = {}

    def problem(self, asset: AssetInput, base_dir: Path) -> tuple[str, str | None] | None:
        """(message, hint) for a local asset input, or None when it is fine or an asset id."""
        if asset.is_asset_id:
            return None
        if "://" in asset.value or asset.value.startswith("data:"):
            hint = "download it first; asset inputs are an asset_... id or a local file"
            return f"{asset.value[:60]!r} is not a local file", hint
        path = base_dir / os.path.expanduser(asset.value)
        size = self._size(path)
        if isinstance(size, str):
            return size, "paths are relative to the manifest's folder"
        suffix = path.suffix.lower()
        if asset.extensions and suffix not in asset.extensions:
            return f"{suffix or 'no extension'} is not accepted", ", ".join(asset.extensions)
        if asset.max_bytes is not None and size > asset.max_bytes:
            limit = asset.max_bytes / (1024 * 1024)
            return f"file is {size / (1024 * 1024):.1f} MiB; at most {limit:g} MiB", None
        return None

    def _size(self, path: Path) -> int | str:
        if path not in self._sizes:
            try:
                info = path.stat()
            except FileNotFoundError:
                self._sizes[path] = f"file {str(path)!r} not found"
            except OSError as exc:
                self._sizes[path] = f"cannot read {str(path)!r}: {exc.strerror}"
            else:
                regular = stat.S_ISREG(info.st_mode)
                self._sizes[path] = info.st_size if regular else f"{str(path)!r} is not a file"
        return self._sizes[path]
