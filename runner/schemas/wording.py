"""The words of a validation problem, because a user fixes a manifest from them alone.

jsonschema's own messages open with the whole value (perhaps a 2,000-character prompt), name
no field and offer no fix; here each error becomes a `Problem` with its field path and a hint.
A schema may word a failing combinator itself, beside it:

- `x-message`: the message to use instead of jsonschema's.
- `x-hint`: the hint to give with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from jsonschema.exceptions import ValidationError

from runner.domain import Problem
from runner.schemas.paths import Pointer, format_path
from runner.schemas.suggestions import suggest


def _short(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_error(error: ValidationError, model: str, *, allow_unknown: bool) -> list[Problem]:
    """A jsonschema error in plain words, with the field path and a hint where one helps."""
    pointer: Pointer = tuple(error.absolute_path)
    kind, schema, value = error.validator, error.schema, error.instance
    if kind == "additionalProperties":
        return _unknown_keys(error, pointer, model, allow_unknown)
    hint = schema.get("x-hint") if isinstance(schema, Mapping) else None
    message = error.message
    if message.startswith(repr(value)):
        # jsonschema opens with the whole value, which may be a 2,000-character prompt.
        message = _short(value) + message[len(repr(value)) :]
    if isinstance(schema, Mapping) and "x-message" in schema:
        message = str(schema["x-message"])
    elif kind == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        pointer, message = (*pointer, *missing[:1]), "is required"
    elif kind in ("maxLength", "minLength") and isinstance(value, str):
        message = f"is {len(value)} characters long; the {kind[:3]}imum is {error.validator_value}"
    elif kind in ("maxItems", "minItems") and isinstance(value, list):
        message = f"has {len(value)} items; the {kind[:3]}imum is {error.validator_value}"
    if kind in ("enum", "type") and _is_number(value):
        hint = _string_hint(schema, value) or hint
    return [Problem(message, model=model, path=format_path(pointer), hint=hint)]


def is_redundant(error: ValidationError) -> bool:
    # A wrong type on an enum field also fails the enum, whose message lists the choices.
    return error.validator == "type" and "enum" in error.schema


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _string_hint(schema: Mapping[str, Any], value: object) -> str | None:
    choices = [str(c) for c in schema.get("enum", ())]
    if str(value) in choices:
        return f'durations and other choices are strings: write "{value}"'
    if schema.get("type") == "string" and choices:
        return f'choices are strings, e.g. "{choices[0]}"'
    return None


def _unknown_keys(
    error: ValidationError, pointer: Pointer, model: str, allow_unknown: bool
) -> list[Problem]:
    known = list(error.schema.get("properties", {}))
    problems = []
    for name in (key for key in error.instance if key not in known):
        guess = suggest(str(name), known)
        hint = f"did you mean {guess!r}?" if guess else f"known: {', '.join(known)}"
        path = format_path((*pointer, str(name)))
        if allow_unknown:
            message = "unknown parameter, sent as is (--allow-unknown-params)"
            problems.append(Problem(message, None, None, model, path, hint, "warning"))
        else:
            hint += " (--allow-unknown-params sends it anyway)"
            problems.append(Problem("unknown parameter", model=model, path=path, hint=hint))
    return problems


def unknown_model_problem(model: object, known: tuple[str, ...]) -> Problem:
    """The problem for a model id that has no schema, with a did-you-mean hint."""
    guess = suggest(str(model), known)
    hint = f"did you mean {guess!r}?" if guess else f"known models: {', '.join(known)}"
    return Problem(f"unknown model {model!r}", model=None, path="model", hint=hint)
