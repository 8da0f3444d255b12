"""A model schema's rules: a compiled yes/no check, problems in words, the `x-` rules.

`validity_check` compiles a schema into a faster, exact `is_valid`; `describe_error` words a
jsonschema error, with field path and hint; `extra_problems` enforces what JSON Schema cannot:

- `x-shot-durations` `{shots, total}`: the shots' `duration`s add up to `total`.
- `x-combined-max-items` `{fields, max}`: those arrays hold at most `max` items together.
- `x-prompt-references` `{fields, tokens}`: `@Element2` in a prompt needs a 2nd element.
- `x-message` / `x-hint` beside a combinator: the words to use when it fails.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from runner.domain import Problem

Pointer = tuple[str | int, ...]


def format_path(pointer: Pointer) -> str:
    """`("elements", 0, "frontalImage")` → `params.elements[0].frontalImage`."""
    text = "params"
    for part in pointer:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def suggest(word: str, options: Iterator[str] | tuple[str, ...] | list[str]) -> str | None:
    """The option `word` most likely meant: same letters ignoring case and `_-`, else close."""
    choices = list(options)
    folded = {re.sub(r"[_\-\s]", "", c).lower(): c for c in choices}
    exact = folded.get(re.sub(r"[_\-\s]", "", word).lower())
    if exact is not None:
        return exact
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return close[0] if close else None


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


def extra_problems(
    schema: Mapping[str, Any], params: Mapping[str, Any], model: str
) -> list[Problem]:
    """The rules JSON Schema cannot express, driven by the schema's `x-` annotations."""
    problems = _shot_durations(schema, params)
    problems += _combined_items(schema, params)
    problems += _prompt_references(schema, params)
    return [Problem(message, model=model, path=path, hint=hint) for path, message, hint in problems]


_Finding = tuple[str, str, str | None]  # path, message, hint


def _shot_durations(schema: Mapping[str, Any], params: Mapping[str, Any]) -> list[_Finding]:
    rule = schema.get("x-shot-durations")
    shots = params.get(rule["shots"]) if rule else None
    if not rule or not isinstance(shots, list):
        return []
    total = params.get(rule["total"], schema["properties"][rule["total"]].get("default"))
    seconds = [shot.get("duration") for shot in shots if isinstance(shot, Mapping)]
    if not all(isinstance(s, str) and s.isdigit() for s in seconds) or not str(total).isdigit():
        return []  # the schema already reports malformed durations
    added = sum(int(str(s)) for s in seconds)
    if added == int(str(total)):
        return []
    message = f"the shots' durations add up to {added} s but {rule['total']} is {str(total)!r}"
    hint = f'set {rule["total"]}: "{added}" or change the shots'
    return [(format_path((rule["shots"],)), message, hint)]


def _combined_items(schema: Mapping[str, Any], params: Mapping[str, Any]) -> list[_Finding]:
    rule = schema.get("x-combined-max-items")
    if not rule:
        return []
    fields = rule["fields"]
    count = sum(len(v) for f in fields if isinstance(v := params.get(f), list))
    if count <= rule["max"]:
        return []
    message = f"{' + '.join(fields)} hold {count} items together; at most {rule['max']} allowed"
    return [(format_path((fields[0],)), message, "drop some references")]


def _prompt_references(schema: Mapping[str, Any], params: Mapping[str, Any]) -> list[_Finding]:
    rule = schema.get("x-prompt-references")
    if not rule:
        return []
    findings: list[_Finding] = []
    tokens: Mapping[str, str] = rule["tokens"]
    pattern = re.compile(r"@(" + "|".join(map(re.escape, tokens)) + r")(\d+)")
    for field in rule["fields"]:
        text = params.get(field)
        for token, number in pattern.findall(text) if isinstance(text, str) else ():
            given = params.get(tokens[token])
            available = len(given) if isinstance(given, list) else 0
            if not 1 <= int(number) <= available:
                message = f"@{token}{number} refers to {tokens[token]}[{int(number) - 1}]"
                message += f" but {available} {tokens[token]} are given"
                findings.append((format_path((field,)), message, "references count from 1"))
    return findings


Check = Callable[[Any], bool]
_TYPE_CHECKER = Draft202012Validator.TYPE_CHECKER
_KEYWORDS = frozenset(Draft202012Validator.VALIDATORS)  # the rest are annotations
_SIMPLE_TYPES: dict[str, Check] = {
    "string": lambda v: isinstance(v, str),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


class _Unsupported(Exception):
    """A keyword `validity_check` does not implement: that model keeps jsonschema alone."""


def validity_check(schema: object) -> Check | None:
    """A function answering exactly `Draft202012Validator(schema).is_valid(value)`, faster;
    None when the schema uses a keyword not implemented here. Each keyword mirrors
    jsonschema's own test (`not x < minimum`, so NaN passes as there; `is_type` for numbers).
    """
    try:
        return _compile(schema)
    except _Unsupported:
        return None


def _compile(schema: object) -> Check:
    if isinstance(schema, bool):
        return (lambda _: True) if schema else (lambda _: False)
    if not isinstance(schema, Mapping):
        raise _Unsupported(repr(schema))
    checks = [
        _keyword(name, arg)
        for name, arg in schema.items()
        if name in _KEYWORDS and name != "additionalProperties"
    ]
    if "additionalProperties" in schema:  # needs `properties` beside it
        checks.append(_additional(schema["additionalProperties"], schema.get("properties", {})))
    return _every(tuple(checks))


def _every(checks: tuple[Check, ...]) -> Check:
    if len(checks) == 1:
        return checks[0]

    def check(value: Any) -> bool:
        for test in checks:  # noqa: SIM110 - a plain loop beats all(<genexpr>) on the hot path
            if not test(value):
                return False
        return True

    return check


def _additional(arg: Any, properties: Mapping[str, Any]) -> Check:
    # jsonschema checks each key that `properties` does not name against the schema.
    extra, known = _compile(arg), frozenset(properties)
    return lambda value: (
        not isinstance(value, dict) or all(extra(value[key]) for key in value if key not in known)
    )


def _keyword(name: str, arg: Any) -> Check:
    build = _BUILDERS.get(name)
    if build is None:
        raise _Unsupported(name)
    return build(arg)


def _type(arg: Any) -> Check:
    tests = [
        _SIMPLE_TYPES.get(n) or (lambda v, n=n: _TYPE_CHECKER.is_type(v, n))
        for n in ([arg] if isinstance(arg, str) else arg)
    ]
    if len(tests) == 1:
        return tests[0]
    return lambda value: any(test(value) for test in tests)


def _enum(arg: Any) -> Check:
    # jsonschema's `equal` compares a str with == and never equates a str with a non-str.
    if not all(isinstance(choice, str) for choice in arg):
        raise _Unsupported("enum")
    choices = frozenset(arg)
    return lambda value: isinstance(value, str) and value in choices


def _json_number(value: Any) -> bool:
    kind = type(value)
    return kind is int or kind is float or bool(_TYPE_CHECKER.is_type(value, "number"))


def _properties(arg: Any) -> Check:
    subs = tuple((name, _compile(sub)) for name, sub in arg.items())
    return lambda value: (
        not isinstance(value, dict)
        or all(test(value[name]) for name, test in subs if name in value)
    )


def _combinator(arg: Any, verdict: Callable[[list[bool]], bool]) -> Check:
    subs = tuple(_compile(sub) for sub in arg)
    return lambda value: verdict([test(value) for test in subs])


def _items(arg: Any) -> Check:
    sub = _compile(arg)
    return lambda value: not isinstance(value, list) or all(sub(item) for item in value)


_BUILDERS: dict[str, Callable[[Any], Check]] = {
    "type": _type,
    "enum": _enum,
    "properties": _properties,
    "items": _items,
    "required": lambda arg: lambda v: not isinstance(v, dict) or all(k in v for k in arg),
    "minLength": lambda arg: lambda v: not isinstance(v, str) or not len(v) < arg,
    "maxLength": lambda arg: lambda v: not isinstance(v, str) or not len(v) > arg,
    "minItems": lambda arg: lambda v: not isinstance(v, list) or not len(v) < arg,
    "maxItems": lambda arg: lambda v: not isinstance(v, list) or not len(v) > arg,
    "minimum": lambda arg: lambda v: not _json_number(v) or not v < arg,
    "maximum": lambda arg: lambda v: not _json_number(v) or not v > arg,
    "allOf": lambda arg: _combinator(arg, all),
    "anyOf": lambda arg: _combinator(arg, any),
    "oneOf": lambda arg: _combinator(arg, lambda verdicts: verdicts.count(True) == 1),
}
