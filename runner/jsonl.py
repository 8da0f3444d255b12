"""JSON Lines, as every file of the output folder writes them: one compact UTF-8 object per
line; a reader skips what does not parse (a line torn by a crash)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any


def json_line(obj: Mapping[str, Any]) -> bytes:
    """One compact JSON line, UTF-8, newline-terminated."""
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def json_objects(lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSONL file, skipping lines that do not parse (a torn tail)."""
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(obj, dict):
            yield obj
