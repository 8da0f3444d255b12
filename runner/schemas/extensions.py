"""The `x-` rules: what a model accepts that JSON Schema cannot say, kept in its schema file.

Each rule lives beside the fields it constrains, in an annotation that jsonschema (and so the
built-in simulator) ignores and `extra_problems` enforces:

- `x-shot-durations` `{shots, total}`: the shots' `duration`s add up to `total`.
- `x-combined-max-items` `{fields, max}`: those arrays hold at most `max` items together.
- `x-prompt-references` `{fields, tokens}`: `@Element2` in a prompt needs a 2nd element.

The other annotations belong elsewhere: `x-asset` marks the asset inputs the registry finds,
and `x-message` / `x-hint` are wording.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from runner.domain import Problem
from runner.schemas.paths import format_path


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
