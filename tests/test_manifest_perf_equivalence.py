"""The fast paths report exactly what the slow paths report.

`SchemaRegistry` skips jsonschema's `iter_errors` when a compiled `validity_check` says the
params are valid. That is only sound if the check agrees with `is_valid` on every value, and
if loading a manifest gives the same problems, word for word, with the check as without it.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from runner.errors import ManifestError
from runner.manifest import load_manifest
from runner.schemas import SchemaRegistry, default_schema_dir, validity_check
from runner.schemas.registry import _walk_assets

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = {
    file.name.removesuffix(".schema.json"): json.loads(file.read_text(encoding="utf-8"))
    for file in sorted(default_schema_dir().glob("model_*.schema.json"))
}
PALETTE: list[Any] = [
    None, True, False, 0, 1, 5, 1.0, 0.5, -0.1, 1.5, float("nan"), float("inf"), "", "5",
    "10", "x", "asset_1", "a.png", "x" * 3000, [], ["a"], [1], [{}], {}, {"frontalImage": "a"},
    [{"prompt": "a", "duration": "2"}], [{"prompt": "a", "duration": 2}], [{"frontalImage": 1}],
    [{"frontalImage": "a", "referenceImages": ["b", "c", "d", "e"]}], ["a"] * 7,
    [{"prompt": "a", "duration": "2", "x": 1}], [{"prompt": "", "duration": "16"}],
]  # fmt: skip


def _valid_params(model: str) -> dict[str, Any]:
    example = REPO / "manifests" / f"{model.removeprefix('model_')}.yaml"
    return dict(load_manifest(example, SchemaRegistry.load(fast=False)).jobs[0].params)


def _variants(model: str, rng: random.Random) -> Iterator[Any]:
    """The palette, then the example's params with zero to three fields changed or dropped."""
    base = _valid_params(model)
    names = [*SCHEMAS[model].get("properties", {}), "cfg_scale"]
    yield from PALETTE
    for _ in range(2000):
        value = copy.deepcopy(base)
        for name in rng.sample(names, rng.randint(0, 3)):
            if rng.random() < 0.25:
                value.pop(name, None)
            else:
                value[name] = copy.deepcopy(rng.choice(PALETTE))
        yield value


@pytest.mark.parametrize("model", sorted(SCHEMAS))
def test_the_compiled_check_agrees_with_jsonschema(model: str) -> None:
    schema = SCHEMAS[model]
    check = validity_check(schema)
    assert check is not None, "every shipped schema compiles: none falls back to jsonschema"
    validator = Draft202012Validator(schema)
    rng = random.Random(model)
    seen = {True: 0, False: 0}
    for value in _variants(model, rng):
        verdict = validator.is_valid(value)
        assert check(value) is verdict, (model, value)
        seen[verdict] += 1
    assert seen[True] > 100 and seen[False] > 100  # both sides were exercised


@pytest.mark.parametrize(
    "schema",
    [{"pattern": "a"}, {"$ref": "#/$defs/x"}, {"enum": [1, "1"]}, {"items": {"const": 1}}],
)
def test_keywords_it_does_not_implement_leave_jsonschema_alone(schema: dict[str, Any]) -> None:
    assert validity_check(schema) is None


BROKEN = [
    "jobs:\n  - model: model_kling-v2-1-pro\n    params: {prompt: hi, duration: 5, cfg_scale: 2,"
    " startImage: nope.png}\n",
    "jobs:\n  - model: model_kling-v3-t2v-4k\n    params: {prompt: hi, duration: '5',"
    " multiPrompt: [{prompt: a, duration: '2'}, {prompt: '', duration: 3}, {x: 1}]}\n",
    "jobs:\n  - model: model_kling-v3-t2v-4k\n    params: {multiPrompt: [{prompt: a, duration:"
    " '2'}], duration: '5', aspectRatio: '4:3', cfgScale: 1.5, generateAudio: 'yes'}\n",
    "jobs:\n  - model: model_kling-v3-t2v-4k\n    params: {prompt: [1], cfgScale: true,"
    " negativePrompt: " + "n" * 2600 + "}\n",
    "jobs:\n  - model: model_kling-o1-video-reference\n    params: {prompt: '@Element2 @Image3',"
    " video: v.mp4, elements: [{frontalImage: a.png}, {referenceImages: [b, c, d, e]}, 5],"
    " images: [x.png, asset_y, z]}\n",
    "jobs:\n  - model: model_kling-v2-6-motion-control\n    params: {image: knight.png,"
    " video: knight.png, characterOrientation: left, mode: fast}\n",
    "jobs:\n  - model: model_kling-v3-pro-motion-control\n    params: {}\n"
    "  - model: model_kling-v2-1-pro\n    params: {}\n  - model: model_kling-v9\n    params: {}\n",
    "defaults:\n  model: model_kling-v2-1-pro\n  params: &p {duration: '5', startImage: knight.png}"
    "\njobs:\n  - {params: {<<: *p, prompt: a, cfgScale: .nan}}\n  - {params: *p}\n"
    "  - id: set\n    prompts: [a, '', 3]\n    repeat: 2\n",
]


@pytest.mark.parametrize("text", BROKEN)
@pytest.mark.parametrize("allow_unknown", [False, True])
def test_loading_reports_the_same_problems_with_and_without_the_fast_path(
    tmp_path: Path, text: str, allow_unknown: bool
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("version: 1\n" + text, encoding="utf-8")
    (tmp_path / "knight.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    reports = []
    for fast in (True, False):
        registry = SchemaRegistry.load(fast=fast)
        with pytest.raises(ManifestError) as caught:
            load_manifest(path, registry, allow_unknown_params=allow_unknown)
        reports.append(caught.value.problems)
    assert reports[0] == reports[1]
    assert reports[0]


@pytest.mark.parametrize("example", sorted((REPO / "manifests").glob("*.yaml")), ids=str)
def test_the_examples_load_the_same_with_and_without_the_fast_path(example: Path) -> None:
    fast = load_manifest(example, SchemaRegistry.load(fast=True))
    slow = load_manifest(example, SchemaRegistry.load(fast=False))
    assert fast == slow


@pytest.mark.parametrize("model", sorted(SCHEMAS))
def test_asset_inputs_walk_the_pruned_schema_to_the_same_inputs(model: str) -> None:
    registry = SchemaRegistry.load()
    rng = random.Random(f"assets-{model}")
    for value in _variants(model, rng):
        if isinstance(value, dict):
            expected = list(_walk_assets(SCHEMAS[model], value, ()))
            assert registry.asset_inputs(model, value) == expected
