"""The models kling-batch knows, so every command checks a job against the same schemas.

Each `schemas/<modelId>.schema.json` is plain JSON Schema (draft 2020-12), so the built-in
simulator can validate request bodies with jsonschema alone. The registry loads them once and
answers, per model, what is wrong with a job's params and which of them are asset inputs
(the strings a schema marks with `x-asset`: `kind`, optional `maxBytes`, `extensions`).

Most jobs are valid, and jsonschema spends ~45 µs proving it, so each model also gets a
compiled yes/no check (`compiled.validity_check`); only params it rejects go through
jsonschema's `iter_errors`, whose errors `wording` turns into problems. The rules JSON Schema
cannot express are the `extensions`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from runner.domain import Problem
from runner.errors import UsageError
from runner.schemas.compiled import validity_check
from runner.schemas.extensions import extra_problems
from runner.schemas.paths import Pointer, format_path
from runner.schemas.wording import describe_error, is_redundant, unknown_model_problem

__all__ = ["AssetInput", "SchemaRegistry", "default_schema_dir"]

SCHEMA_SUFFIX = ".schema.json"
_MANIFEST_SCHEMA = "manifest.schema.json"


def default_schema_dir() -> Path:
    """The schemas folder: `$KLING_BATCH_SCHEMAS`, else the checkout's, else the packaged copy."""
    override = os.environ.get("KLING_BATCH_SCHEMAS")
    if override:
        return Path(override)
    root = Path(__file__).resolve().parents[2]
    # pyproject.toml marks a checkout: site-packages may hold some other "schemas" folder.
    if (root / "schemas").is_dir() and (root / "pyproject.toml").is_file():
        return root / "schemas"
    return Path(__file__).resolve().parents[1] / "_schemas"


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

    def local_path(self, base_dir: Path) -> Path:
        """The file a local value names: relative to `base_dir` (the manifest's folder),
        `~` expanded. One spelling for the checks at load time and the upload."""
        return base_dir / os.path.expanduser(self.value)


class SchemaRegistry:
    """The models known to kling-batch, one compiled validator each."""

    def __init__(self, schemas: Mapping[str, Mapping[str, Any]], *, fast: bool = True) -> None:
        """`fast=False` skips the compiled checks: jsonschema alone (tests compare the two)."""
        self._schemas = dict(sorted(schemas.items()))
        self._use_fast = fast
        # Compiled once per model, on first use: building a validator is far costlier than
        # running it, and a manifest seldom uses every model.
        self._compiled: dict[str, _Compiled] = {}

    @classmethod
    def load(cls, directory: Path | None = None, *, fast: bool = True) -> SchemaRegistry:
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
        return cls(schemas, fast=fast)

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
        compiled = self._compile(model)
        if compiled.fast is not None and compiled.fast(params):
            return extra_problems(schema, params, model)
        problems = [
            problem
            for error in compiled.validator.iter_errors(params)
            if not is_redundant(error)
            for problem in describe_error(error, model, allow_unknown=allow_unknown)
        ]
        problems.extend(extra_problems(schema, params, model))
        return problems

    def asset_inputs(self, model: str, params: Mapping[str, Any]) -> list[AssetInput]:
        """Every asset-bearing string of `params`, found through the schema's `x-asset`."""
        if model not in self._schemas:
            return []
        branches = self._compile(model).assets
        return list(_walk_assets(branches, params, ())) if branches else []

    def _compile(self, model: str) -> _Compiled:
        compiled = self._compiled.get(model)
        if compiled is None:
            schema = self._schemas[model]
            compiled = _Compiled(Draft202012Validator(schema),
                                 validity_check(schema) if self._use_fast else None,
                                 _asset_branches(schema) or {})
            self._compiled[model] = compiled
        return compiled


@dataclass(frozen=True, slots=True)
class _Compiled:
    """One model's validator, fast yes/no check and asset-bearing branches."""

    validator: Draft202012Validator
    fast: Callable[[Any], bool] | None
    assets: dict[str, Any]


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


def _asset_branches(schema: object) -> dict[str, Any] | None:
    """The part of `schema` that `_walk_assets` can reach an `x-asset` through, or None.

    Walking the whole schema for each of 100,000 jobs visits every property; the pruned
    copy keeps the same order, so the inputs come out the same.
    """
    if not isinstance(schema, Mapping):
        return None
    pruned = {"x-asset": schema["x-asset"]} if "x-asset" in schema else {}
    properties = {}
    for name, sub in schema.get("properties", {}).items():
        if (branch := _asset_branches(sub)) is not None:
            properties[name] = branch
    if properties:
        pruned["properties"] = properties
    if (items := _asset_branches(schema.get("items"))) is not None:
        pruned["items"] = items
    return pruned or None


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
