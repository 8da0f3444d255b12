"""The models the simulator knows: one JSON Schema file each, read from a folder.

Deliberately independent of `runner/schemas/registry.py`: the simulator reads the same files with
plain `jsonschema`, so a client bug and a validator bug cannot cancel each other out.
Asset-bearing fields carry the `x-asset` annotation; `models_description` turns a schema into
the `inputs` list that `GET /v1/models/{id}` returns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

MODEL_ID = re.compile(r"^model_[A-Za-z0-9._-]{1,120}$")
ASSET_ID = re.compile(r"^asset_[A-Za-z0-9_-]+$")
_COMBINATORS = ("allOf", "anyOf", "oneOf")


@dataclass(frozen=True)
class ModelSchema:
    """One model: its id, its schema document and a compiled validator."""

    model_id: str
    schema: Mapping[str, Any]
    validator: Any

    def first_error(self, body: Any) -> str | None:
        """A message naming the offending field, or None when `body` is valid."""
        errors = sorted(self.validator.iter_errors(body), key=lambda e: (len(e.path), e.path))
        if not errors:
            return None
        error = errors[0]
        where = ".".join(str(part) for part in error.absolute_path) or "body"
        return f"Invalid input for {self.model_id}: {where}: {error.message}"

    def asset_values(self, body: Any) -> set[str]:
        """Every string the schema marks as an asset reference (`x-asset`) in `body`."""
        return set(_asset_values(self.schema, self.schema, body, depth=0))


def _resolve(node: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, Mapping) else {}
        return target if isinstance(target, Mapping) else {}
    return node


def _asset_values(
    node: Any, root: Mapping[str, Any], value: Any, depth: int
) -> Iterator[str]:
    if not isinstance(node, Mapping) or depth > 32:
        return
    node = _resolve(node, root)
    if "x-asset" in node and isinstance(value, str):
        yield value
    if isinstance(value, Mapping):
        properties = node.get("properties", {})
        for key, item in value.items():
            yield from _asset_values(properties.get(key), root, item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _asset_values(node.get("items"), root, item, depth + 1)
    for combinator in _COMBINATORS:
        for sub in node.get(combinator, []):
            yield from _asset_values(sub, root, value, depth + 1)


def load_model(schema_dir: Path, model_id: str) -> ModelSchema | None:
    """The model `model_id` from `schema_dir`, or None when no such schema exists."""
    if not MODEL_ID.match(model_id):
        return None
    path = schema_dir / f"{model_id}.schema.json"
    if not path.is_file():
        return None
    schema = json.loads(path.read_text(encoding="utf-8"))
    return ModelSchema(model_id, schema, Draft202012Validator(schema))


class Catalog:
    """Model schemas read lazily from one folder and kept once compiled."""

    def __init__(self, schema_dir: Path) -> None:
        self.schema_dir = schema_dir
        self._models: dict[str, ModelSchema] = {}

    def get(self, model_id: str) -> ModelSchema | None:
        """The model, or None for an unknown id (the API answers 404)."""
        if model_id not in self._models:
            model = load_model(self.schema_dir, model_id)
            if model is None:
                return None
            self._models[model_id] = model
        return self._models[model_id]


def _input_type(prop: Mapping[str, Any]) -> str:
    kind = prop.get("type")
    items = prop.get("items", {}) if isinstance(prop.get("items"), Mapping) else {}
    if "x-asset" in prop:
        return "file"
    if kind == "array":
        if "x-asset" in items:
            return "file_array"
        if items.get("type") == "object":
            return "inputs_array"
        return "number_array" if items.get("type") in ("number", "integer") else "string_array"
    return {"boolean": "boolean", "number": "number", "integer": "number"}.get(str(kind), "string")


def describe_input(name: str, prop: Mapping[str, Any], required: bool) -> dict[str, Any]:
    """One entry of a model's `inputs`, in the shape of the SDK's `ModelInput`."""
    entry: dict[str, Any] = {"name": name, "type": _input_type(prop)}
    optional = {
        "label": prop.get("title"),
        "description": prop.get("description"),
        "default": prop.get("default"),
        "allowedValues": prop.get("enum"),
        "min": prop.get("minimum"),
        "max": prop.get("maximum"),
        "maxLength": prop.get("maxLength"),
        "minLength": prop.get("minLength"),
    }
    entry.update({key: value for key, value in optional.items() if value is not None})
    asset = prop.get("x-asset")
    if isinstance(asset, Mapping):
        entry["kind"] = asset.get("kind", "image")
        if "maxBytes" in asset:
            entry["maxSize"] = asset["maxBytes"]
    if required:
        entry["required"] = {"always": True}
    return entry


def describe_inputs(schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The `inputs` list of `GET /v1/models/{id}`, derived from the top-level properties."""
    required = set(schema.get("required", []))
    properties = schema.get("properties", {})
    return [
        describe_input(name, _resolve(prop, schema), name in required)
        for name, prop in properties.items()
        if isinstance(prop, Mapping)
    ]


def id_like_strings(value: Any) -> Iterator[str]:
    """Every string in `value` that is exactly an asset id, wherever it sits.

    A safety net beside `x-asset`: an id the schema did not mark still has to exist.
    """
    if isinstance(value, str):
        if ASSET_ID.match(value):
            yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from id_like_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from id_like_strings(item)
