"""A compiled yes/no check per model schema, because most jobs are valid and proving it is slow.

jsonschema spends ~45 µs proving one job's params valid, which is seconds over a 100,000-job
manifest. `validity_check` compiles a schema once into a function that answers exactly what
`Draft202012Validator(schema).is_valid` would, only faster; the registry sends just the params
it rejects through jsonschema, which alone words the problems.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from jsonschema import Draft202012Validator

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
