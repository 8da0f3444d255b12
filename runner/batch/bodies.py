"""Request bodies: a job's params with every local file replaced by its asset id, and what
each of those files was (`input_files`, for the intent and metadata.jsonl)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from runner.domain import JobSpec
from runner.schemas import SchemaRegistry


class AssetSource(Protocol):
    """Turns a local file into an asset id (runner.api.uploads.AssetUploader)."""

    async def asset_id_for(self, path: Any, kind: str) -> str: ...


def set_pointer(body: dict[str, Any], pointer: tuple[str | int, ...], value: str) -> None:
    """Replace the value at `pointer` (keys and list indexes) inside a JSON-like body."""
    node: Any = body
    for step in pointer[:-1]:
        node = node[step]
    node[pointer[-1]] = value


def deep_copy_json(value: Any) -> Any:
    """A copy of plain JSON data (dicts, lists, scalars)."""
    if isinstance(value, Mapping):
        return {k: deep_copy_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [deep_copy_json(v) for v in value]
    return value


async def request_body(
    spec: JobSpec, registry: SchemaRegistry, assets: AssetSource
) -> dict[str, Any]:
    """The generate body of `spec`: local files uploaded (once, cached) and replaced by ids."""
    body: dict[str, Any] = deep_copy_json(spec.params)
    for ref in registry.asset_inputs(spec.model, spec.params):
        if not ref.is_asset_id:
            path = ref.local_path(spec.base_dir).resolve()
            set_pointer(body, ref.pointer, await assets.asset_id_for(path, ref.kind))
    return body


def get_pointer(body: Mapping[str, Any], pointer: tuple[str | int, ...]) -> Any:
    """The value at `pointer` inside a JSON-like body (None when it is not there)."""
    node: Any = body
    for step in pointer:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return None
    return node


async def input_files(
    spec: JobSpec, body: Mapping[str, Any], content_hash: Callable[[Path], Awaitable[str]]
) -> tuple[dict[str, str], ...]:
    """Each local input of `spec` as its intent records it: field, path as written, sha256
    of the content sent, and the asset id the body carries for it."""
    files: list[dict[str, str]] = []
    for item in spec.inputs:
        entry = {"field": item.field, "path": item.value,
                 "sha256": await content_hash(item.path.resolve())}
        asset_id = get_pointer(body, item.pointer)
        if isinstance(asset_id, str):
            entry["assetId"] = asset_id
        files.append(entry)
    return tuple(files)
