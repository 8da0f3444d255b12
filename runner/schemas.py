"""Per-model JSON Schemas: load them once, check one job's params, find its asset inputs.

Each `schemas/<modelId>.schema.json` is plain JSON Schema (draft 2020-12), so the built-in
simulator can validate request bodies with jsonschema alone. A few rules JSON Schema cannot
express live in annotations that jsonschema ignores and this module enforces:

- `x-asset` on a string field: an asset input (`kind`, optional `maxBytes`, `extensions`).
- `x-shot-durations` `{shots, total}`: the shots' `duration`s add up to `total`.
- `x-combined-max-items` `{fields, max}`: those arrays hold at most `max` items together.
- `x-prompt-references` `{fields, tokens}`: `@Element2` in a prompt needs a 2nd element.
- `x-message` / `x-hint` beside a combinator: the words to use when it fails.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError

from runner.domain import Problem
from runner.errors import UsageError

SCHEMA_SUFFIX = ".schema.json"
_MANIFEST_SCHEMA = "manifest.schema.json"
Pointer = tuple[str | int, ...]


def default_schema_dir() -> Path:
    """The schemas folder: `$KLING_BATCH_SCHEMAS`, else the checkout's, else the packaged copy."""
    override = os.environ.get("KLING_BATCH_SCHEMAS")
    if override:
        return Path(override)
    root = Path(__file__).resolve().parent.parent
    # pyproject.toml marks a checkout: site-packages may hold some other "schemas" folder.
    if (root / "schemas").is_dir() and (root / "pyproject.toml").is_file():
        return root / "schemas"
    return Path(__file__).resolve().parent / "_schemas"


@dataclass(frozen=True, slots=True)
class AssetInput:
    """One asset-bearing string inside a job's params (an `asset_...` id or a local path)."""

    pointer: Pointer
    value: str
    kind: str
    max_bytes: int | None = None
    extensions: tuple[str, ...] = ()

    @property
    def is_asset_id(self) -> bool:
        return self.value.startswith("asset_")

    @property
    def path(self) -> str:
        """The JSON path of the field, e.g. `params.elements[0].frontalImage`."""
        return format_path(self.pointer)


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


class SchemaRegistry:
    """The models known to kling-batch, one compiled validator each."""

    def __init__(self, schemas: Mapping[str, Mapping[str, Any]]) -> None:
        self._schemas = dict(sorted(schemas.items()))
        # Compiled once: building a validator is far costlier than running it.
        self._validators = {m: Draft202012Validator(s) for m, s in self._schemas.items()}

    @classmethod
    def load(cls, directory: Path | None = None) -> SchemaRegistry:
        """Load every `<modelId>.schema.json` of `directory` (default: `default_schema_dir()`).

        Raises UsageError when the folder is missing or a schema file is broken.
        """
        folder = directory or default_schema_dir()
        if not folder.is_dir():
            raise UsageError(f"schema folder {folder} not found", hint="set KLING_BATCH_SCHEMAS")
        schemas = {}
        for file in sorted(folder.glob(f"*{SCHEMA_SUFFIX}")):
            if file.name != _MANIFEST_SCHEMA:
                schemas[file.name.removesuffix(SCHEMA_SUFFIX)] = _read_schema(file)
        if not schemas:
            raise UsageError(f"no model schemas in {folder}", hint="expected *.schema.json files")
        return cls(schemas)

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self._schemas)

    def schema(self, model: str) -> Mapping[str, Any]:
        """The model's schema; KeyError for an unknown model."""
        return self._schemas[model]

    def check(
        self, model: str, params: Mapping[str, Any], *, allow_unknown: bool = False
    ) -> list[Problem]:
        """Every problem of `params` for `model`, errors and (with allow_unknown) warnings.

        Problems carry `model`, `path` (`params.duration`), message and hint, no location.
        """
        if model not in self._schemas:
            return [unknown_model_problem(model, self.models)]
        schema = self._schemas[model]
        problems = [
            problem
            for error in self._validators[model].iter_errors(params)
            if not _redundant(error)
            for problem in describe_error(error, model, allow_unknown=allow_unknown)
        ]
        problems.extend(extra_problems(schema, params, model))
        return problems

    def asset_inputs(self, model: str, params: Mapping[str, Any]) -> list[AssetInput]:
        """Every asset-bearing string of `params`, found through the schema's `x-asset`."""
        if model not in self._schemas:
            return []
        return list(_walk_assets(self._schemas[model], params, ()))


def unknown_model_problem(model: object, known: tuple[str, ...]) -> Problem:
    """The problem for a model id that has no schema, with a did-you-mean hint."""
    guess = suggest(str(model), known)
    hint = f"did you mean {guess!r}?" if guess else f"known models: {', '.join(known)}"
    return Problem(f"unknown model {model!r}", model=None, path="model", hint=hint)


def _read_schema(file: Path) -> Mapping[str, Any]:
    try:
        schema = json.loads(file.read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"cannot read schema {file}: {exc}") from exc
    except SchemaError as exc:
        raise UsageError(f"schema {file} is not valid JSON Schema: {exc.message}") from exc
    if not isinstance(schema, dict):
        raise UsageError(f"schema {file} is not a JSON object")
    return schema


def _walk_assets(
    schema: Mapping[str, Any], value: object, pointer: Pointer
) -> Iterator[AssetInput]:
    asset = schema.get("x-asset")
    if isinstance(asset, Mapping) and isinstance(value, str):
        yield AssetInput(
            pointer,
            value,
            str(asset.get("kind", "image")),
            asset.get("maxBytes"),
            tuple(asset.get("extensions", ())),
        )
    elif isinstance(value, Mapping):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                yield from _walk_assets(sub, value[name], (*pointer, name))
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            yield from _walk_assets(schema["items"], item, (*pointer, index))


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


def _redundant(error: ValidationError) -> bool:
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
