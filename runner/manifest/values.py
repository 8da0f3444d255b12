"""Values a manifest may hold but a JSON request body cannot carry.

YAML reads `.nan`, `.inf` and keys like `1:` or `~:` happily; JSON (and so the API, the
ledger and the content-derived ids) cannot. They are refused at load time, where the
message can point at the line, instead of failing the run at the first POST.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

Pointer = tuple[Any, ...]


def unsendable(
    value: Any, pointer: Pointer = (), shown: tuple[str | int, ...] = ()
) -> Iterator[tuple[Pointer, tuple[str | int, ...], str, str]]:
    """(pointer, printable pointer, message, hint) for every non-finite number and non-text
    key in `value`; the pointer keeps the YAML keys as read (for the line), the printable
    one spells dict keys as text and list indexes as ints."""
    if isinstance(value, float) and not math.isfinite(value):
        yield pointer, shown, f"{value} is not a number a request can carry", \
            "write a finite number"
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str):
                yield from unsendable(item, (*pointer, key), (*shown, key))
            else:
                yield (*pointer, key), (*shown, str(key)), f"key {key!r} is not text", \
                    "mapping keys must be text: quote them"
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from unsendable(item, (*pointer, index), (*shown, index))


def blank_prompts(value: Any, pointer: Pointer = ()) -> Iterator[Pointer]:
    """The pointers of prompt texts (keys ending in `prompt`, any case) that hold nothing but
    whitespace: a generation from them is paid for and means nothing. (An empty text is the
    schema's to judge: `minLength`.)"""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if (isinstance(key, str) and key.lower().endswith("prompt")
                    and isinstance(item, str) and item and not item.strip()):
                yield (*pointer, key)
            else:
                yield from blank_prompts(item, (*pointer, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from blank_prompts(item, (*pointer, index))
