"""Field paths such as `params.elements[0].frontalImage`, in one notation for every reader.

Problems name the field they are about, and the manifest maps that name back to a YAML line;
both directions live here so the wording, the `x-` rules and the manifest cannot drift apart.
"""

from __future__ import annotations

import re

Pointer = tuple[str | int, ...]


def format_path(pointer: Pointer) -> str:
    """`("elements", 0, "frontalImage")` → `params.elements[0].frontalImage`."""
    text = "params"
    for part in pointer:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def parse_path(path: str) -> Pointer:
    """The inverse of `format_path`; anything unparsable yields the empty pointer."""
    parts: list[str | int] = []
    for name, index in re.findall(r"\.([^.\[\]]+)|\[(\d+)\]", path.removeprefix("params")):
        parts.append(int(index) if index else name)
    return tuple(parts)
