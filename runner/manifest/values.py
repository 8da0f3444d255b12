"""Values a manifest may hold but a request should not carry, found in one walk of a job's
params (`value_problems`).

- YAML reads `.nan`, `.inf` and keys like `1:` or `~:` happily; JSON (and so the API, the
  ledger and the content-derived ids) cannot. They are refused at load time, where the
  message can point at the line, instead of failing the run at the first POST. These are
  `fatal`: the job's params cannot even be hashed into an id.
- A prompt text (a key ending in `prompt`, any case) of nothing but whitespace: a
  generation from it is paid for and means nothing. (An empty text is the schema's to
  judge: `minLength`.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Pointer = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class ValueProblem:
    """One bad value: where (the YAML keys as read, for the line; and printable), what."""

    pointer: Pointer
    shown: tuple[str | int, ...]
    message: str
    hint: str
    fatal: bool


def value_problems(params: Mapping[str, Any]) -> list[ValueProblem]:
    """Every non-finite number, non-text key and whitespace-only prompt in `params`."""
    found: list[ValueProblem] = []
    _walk(params, (), (), found)
    return found


def _walk(value: Any, pointer: Pointer, shown: tuple[str | int, ...],
          found: list[ValueProblem]) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        found.append(ValueProblem(pointer, shown, f"{value} is not a number a request can "
                                  "carry", "write a finite number", True))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                found.append(ValueProblem((*pointer, key), (*shown, str(key)),
                                          f"key {key!r} is not text",
                                          "mapping keys must be text: quote them", True))
            elif (isinstance(item, str) and item and key.lower().endswith("prompt")
                    and not item.strip()):
                found.append(ValueProblem((*pointer, key), (*shown, key),
                                          "the prompt is only whitespace",
                                          "write a prompt, or null to leave a default unset",
                                          False))
            elif isinstance(item, Mapping | list | float):
                _walk(item, (*pointer, key), (*shown, key), found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, Mapping | list | float):
                _walk(item, (*pointer, index), (*shown, index), found)
