"""Each schema rule: one valid and at least one invalid case, table-driven."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from runner.errors import UsageError
from runner.schemas import (
    AssetInput,
    SchemaRegistry,
    default_schema_dir,
    format_path,
    parse_path,
)

V21 = "model_kling-v2-1-pro"
V3 = "model_kling-v3-t2v-4k"
MC26 = "model_kling-v2-6-motion-control"
O1 = "model_kling-o1-video-reference"
MC3 = "model_kling-v3-pro-motion-control"

BASE: dict[str, dict[str, Any]] = {
    V21: {"prompt": "a knight", "startImage": "asset_a"},
    V3: {"prompt": "a lighthouse"},
    MC26: {"image": "asset_i", "video": "asset_v"},
    O1: {"prompt": "dance", "video": "asset_v"},
    MC3: {"image": "asset_i", "video": "asset_v"},
}


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    return SchemaRegistry.load()


def body(model: str, **changes: Any) -> dict[str, Any]:
    params = {**BASE[model], **changes}
    return {k: v for k, v in params.items() if v is not None}


def errors(registry: SchemaRegistry, model: str, params: Mapping[str, Any]) -> list[str]:
    return [p.path or "" for p in registry.check(model, params) if p.severity == "error"]


SHOTS_OK = [{"prompt": "wide", "duration": "2"}, {"prompt": "close", "duration": "3"}]

# (rule, model, valid params, invalid params, path of the expected problem)
RULES: list[tuple[str, str, dict[str, Any], dict[str, Any], str]] = [
    ("prompt required", V21, body(V21), body(V21, prompt=None), "params.prompt"),
    ("startImage required", V21, body(V21), body(V21, startImage=None), "params.startImage"),
    (
        "prompt ≤ 2500",
        V21,
        body(V21, prompt="x" * 2500),
        body(V21, prompt="x" * 2501),
        "params.prompt",
    ),
    (
        "negativePrompt ≤ 2500",
        V3,
        body(V3, negativePrompt="n" * 2500),
        body(V3, negativePrompt="n" * 2501),
        "params.negativePrompt",
    ),
    ("cfgScale 0..1", V21, body(V21, cfgScale=1), body(V21, cfgScale=1.5), "params.cfgScale"),
    ("cfgScale ≥ 0", V3, body(V3, cfgScale=0), body(V3, cfgScale=-0.1), "params.cfgScale"),
    ("duration a string", V21, body(V21, duration="5"), body(V21, duration=5), "params.duration"),
    (
        "2.1 duration 5|10",
        V21,
        body(V21, duration="10"),
        body(V21, duration="7"),
        "params.duration",
    ),
    ("V3 duration to 15", V3, body(V3, duration="15"), body(V3, duration="16"), "params.duration"),
    ("V3 duration from 3", V3, body(V3, duration="3"), body(V3, duration="2"), "params.duration"),
    ("O1 duration to 10", O1, body(O1, duration="10"), body(O1, duration="15"), "params.duration"),
    (
        "motion control has no duration",
        MC26,
        body(MC26),
        body(MC26, duration="5"),
        "params.duration",
    ),
    (
        "aspectRatio enum",
        V3,
        body(V3, aspectRatio="9:16"),
        body(V3, aspectRatio="4:3"),
        "params.aspectRatio",
    ),
    (
        "auto only on O1",
        O1,
        body(O1, aspectRatio="auto"),
        body(O1, aspectRatio="21:9"),
        "params.aspectRatio",
    ),
    (
        "no auto on V3",
        V3,
        body(V3, aspectRatio="1:1"),
        body(V3, aspectRatio="auto"),
        "params.aspectRatio",
    ),
    (
        "shotType enum",
        V3,
        body(V3, shotType="intelligent"),
        body(V3, shotType="smart"),
        "params.shotType",
    ),
    (
        "characterOrientation enum",
        MC3,
        body(MC3, characterOrientation="video"),
        body(MC3, characterOrientation="both"),
        "params.characterOrientation",
    ),
    ("mode enum", MC26, body(MC26, mode="standard"), body(MC26, mode="fast"), "params.mode"),
    (
        "booleans",
        MC26,
        body(MC26, keepOriginalSound=False),
        body(MC26, keepOriginalSound="no"),
        "params.keepOriginalSound",
    ),
    (
        "prompt xor multiPrompt: both",
        V3,
        body(V3, duration="5"),
        body(V3, multiPrompt=SHOTS_OK),
        "params",
    ),
    (
        "prompt xor multiPrompt: neither",
        V3,
        body(V3, prompt=None, multiPrompt=SHOTS_OK),
        body(V3, prompt=None),
        "params",
    ),
    (
        "multiPrompt 1-6 shots",
        V3,
        body(V3, prompt=None, multiPrompt=[{"prompt": "one", "duration": "5"}], duration="5"),
        body(V3, prompt=None, multiPrompt=[SHOTS_OK[0]] * 7, duration="14"),
        "params.multiPrompt",
    ),
    (
        "shots add up to duration",
        V3,
        body(V3, prompt=None, multiPrompt=SHOTS_OK, duration="5"),
        body(V3, prompt=None, multiPrompt=SHOTS_OK, duration="6"),
        "params.multiPrompt",
    ),
    (
        "shots use the default duration",
        V3,
        body(V3, prompt=None, multiPrompt=SHOTS_OK),
        body(V3, prompt=None, multiPrompt=SHOTS_OK[:1]),
        "params.multiPrompt",
    ),
    (
        "shot shape",
        V3,
        body(V3, prompt=None, multiPrompt=SHOTS_OK),
        body(V3, prompt=None, multiPrompt=[{"prompt": "x", "duration": 5}]),
        "params.multiPrompt[0].duration",
    ),
    ("O1 video required", O1, body(O1), body(O1, video=None), "params.video"),
    ("motion image required", MC3, body(MC3), body(MC3, image=None), "params.image"),
    (
        "elements + images ≤ 4",
        O1,
        body(O1, elements=[{"frontalImage": "a"}] * 2, images=["b", "c"]),
        body(O1, elements=[{"frontalImage": "a"}] * 2, images=["b", "c", "d"]),
        "params.elements",
    ),
    (
        "element shape",
        MC3,
        body(MC3, elements=[{"frontalImage": "a", "referenceImages": ["b"]}]),
        body(MC3, elements=[{"front": "a"}]),
        "params.elements[0].frontalImage",
    ),
    (
        "@Element in range",
        O1,
        body(O1, prompt="@Element1 dances", elements=[{"frontalImage": "a"}]),
        body(O1, prompt="@Element2 dances", elements=[{"frontalImage": "a"}]),
        "params.prompt",
    ),
    (
        "@Image in range",
        O1,
        body(O1, prompt="like @Image1", images=["b"]),
        body(O1, prompt="like @Image1"),
        "params.prompt",
    ),
    (
        "asset fields not empty",
        V21,
        body(V21, endImage="asset_e"),
        body(V21, endImage=""),
        "params.endImage",
    ),
    (
        "unknown params refused",
        V21,
        body(V21, cfgScale=0.5),
        body(V21, cfg_scale=0.5),
        "params.cfg_scale",
    ),
    (
        "unknown nested keys refused",
        O1,
        body(O1, elements=[{"frontalImage": "a"}]),
        body(O1, elements=[{"frontalImage": "a", "backImage": "b"}]),
        "params.elements[0].backImage",
    ),
]


@pytest.mark.parametrize(
    ("model", "good", "bad", "path"), [r[1:] for r in RULES], ids=[r[0] for r in RULES]
)
def test_schema_rule(
    registry: SchemaRegistry, model: str, good: dict[str, Any], bad: dict[str, Any], path: str
) -> None:
    assert errors(registry, model, good) == []
    assert path in errors(registry, model, bad)


@pytest.mark.parametrize("model", sorted(BASE))
def test_plain_jsonschema_agrees_on_the_schema_rules(registry: SchemaRegistry, model: str) -> None:
    # The simulator validates with plain jsonschema: what the schema can say, it must say.
    validator = Draft202012Validator(dict(registry.schema(model)))
    assert validator.is_valid(BASE[model])
    assert not validator.is_valid({**BASE[model], "bogus": 1})


def test_a_path_or_an_asset_id_both_pass(registry: SchemaRegistry) -> None:
    assert errors(registry, V21, body(V21, startImage="images/knight.png")) == []
    assert errors(registry, V21, body(V21, startImage="asset_abc")) == []


def test_messages_say_what_to_do(registry: SchemaRegistry) -> None:
    [duration] = [
        p for p in registry.check(V21, body(V21, duration=5)) if p.path == "params.duration"
    ]
    assert duration.message == "5 is not one of ['5', '10']"
    assert duration.hint is not None and 'write "5"' in duration.hint
    [typo] = registry.check(V21, body(V21, cfg_scale=0.5))
    assert typo.hint is not None and "'cfgScale'" in typo.hint
    [long] = registry.check(V21, body(V21, prompt="x" * 3000))
    assert long.message == "is 3000 characters long; the maximum is 2500"


def test_allow_unknown_turns_unknown_params_into_warnings(registry: SchemaRegistry) -> None:
    [problem] = registry.check(V21, body(V21, newKnob=1), allow_unknown=True)
    assert (problem.severity, problem.path) == ("warning", "params.newKnob")
    assert (
        registry.check(V21, body(V21, newKnob=1, duration="7"), allow_unknown=True)[-1].severity
        == "error"
    )


def test_unknown_model_gets_a_did_you_mean(registry: SchemaRegistry) -> None:
    [problem] = registry.check("model_kling-v2-1-pr", {})
    assert problem.path == "model" and problem.hint == "did you mean 'model_kling-v2-1-pro'?"


def test_asset_inputs_are_found_through_x_asset(registry: SchemaRegistry) -> None:
    params = body(
        O1, elements=[{"frontalImage": "f.png", "referenceImages": ["asset_r"]}], images=["i.png"]
    )
    found = registry.asset_inputs(O1, params)
    assert [(a.pointer, a.kind, a.is_asset_id) for a in found] == [
        (("video",), "video", True),
        (("images", 0), "image", False),
        (("elements", 0, "frontalImage"), "image", False),
        (("elements", 0, "referenceImages", 0), "image", True),
    ]
    assert found[0].max_bytes == 200 * 1024 * 1024 and found[0].extensions == (".mp4", ".mov")


def test_paths_round_trip() -> None:
    pointer = ("elements", 0, "frontalImage")
    assert format_path(pointer) == "params.elements[0].frontalImage"
    assert parse_path(format_path(pointer)) == pointer
    assert AssetInput(pointer, "x", "image").path == "params.elements[0].frontalImage"


def test_registry_lists_the_five_models(registry: SchemaRegistry) -> None:
    assert set(registry.models) == set(BASE)


def test_schema_folder_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KLING_BATCH_SCHEMAS", str(tmp_path))
    assert default_schema_dir() == tmp_path


@pytest.mark.parametrize("content", ["{not json", '{"type": 5}', "[]"])
def test_a_broken_schema_file_is_a_usage_error(tmp_path: Path, content: str) -> None:
    (tmp_path / "model_x.schema.json").write_text(content)
    with pytest.raises(UsageError):
        SchemaRegistry.load(tmp_path)


def test_an_empty_or_missing_folder_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        SchemaRegistry.load(tmp_path)
    with pytest.raises(UsageError):
        SchemaRegistry.load(tmp_path / "absent")


def test_manifest_schema_is_valid_json_schema() -> None:
    schema = json.loads((default_schema_dir() / "manifest.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
