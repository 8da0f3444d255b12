"""Manifest loading: the minimal form, defaults, expansion, ids, settings, examples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from runner.domain import RunSettings
from runner.errors import ManifestError
from runner.manifest import Manifest, load_manifest
from runner.schemas import SchemaRegistry, default_schema_dir

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "manifests").glob("*.yaml"))


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    return SchemaRegistry.load()


def load(tmp_path: Path, registry: SchemaRegistry, text: str, **kw: bool) -> Manifest:
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    (tmp_path / "knight.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return load_manifest(path, registry, **kw)


def problems(tmp_path: Path, registry: SchemaRegistry, text: str, **kw: bool) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load(tmp_path, registry, text, **kw)
    return [str(p) for p in caught.value.problems]


MINIMAL = """\
version: 1
defaults:
  model: model_kling-v2-1-pro
  params: {duration: "5", cfgScale: 0.5}
jobs:
  - id: knight-fog
    model: model_kling-v2-1-pro
    params:
      prompt: A knight walks through fog
      startImage: knight.png
"""


def test_the_minimal_form_of_product_md_loads(tmp_path: Path, registry: SchemaRegistry) -> None:
    manifest = load(tmp_path, registry, MINIMAL)
    [job] = manifest.jobs
    assert job.id == "knight-fog" and job.model == "model_kling-v2-1-pro"
    assert job.params == {
        "duration": "5",
        "cfgScale": 0.5,
        "prompt": "A knight walks through fog",
        "startImage": "knight.png",
    }
    assert (job.location.line, job.location.column) == (6, 5)
    assert job.base_dir == tmp_path and manifest.warnings == ()


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_every_example_validates(registry: SchemaRegistry, example: Path) -> None:
    assert load_manifest(example, registry).jobs
    # ... and against the published manifest schema that editors use.
    schema = json.loads((default_schema_dir() / "manifest.schema.json").read_text())
    Draft202012Validator(schema).validate(yaml.safe_load(example.read_text()))


def test_defaults_merge_per_key_and_null_removes(tmp_path: Path, registry: SchemaRegistry) -> None:
    text = MINIMAL.replace(
        "      startImage: knight.png",
        '      startImage: knight.png\n      cfgScale: null\n      duration: "10"',
    )
    [job] = load(tmp_path, registry, text).jobs
    assert job.params["duration"] == "10" and "cfgScale" not in job.params


def test_a_job_without_id_gets_a_stable_content_id(
    tmp_path: Path, registry: SchemaRegistry
) -> None:
    text = MINIMAL.replace("  - id: knight-fog\n", "  -\n")
    first = load(tmp_path, registry, text).jobs[0].id
    assert first.startswith("v2-1-pro-") and len(first) == len("v2-1-pro-") + 10
    assert load(tmp_path, registry, text).jobs[0].id == first
    changed = load(tmp_path, registry, text.replace("fog", "rain")).jobs[0].id
    assert changed != first


def test_identical_jobs_without_ids_are_duplicates(
    tmp_path: Path, registry: SchemaRegistry
) -> None:
    job = "  - model: model_kling-v3-t2v-4k\n    params: {prompt: same}\n"
    found = problems(tmp_path, registry, "version: 1\njobs:\n" + job + job)
    assert len(found) == 1 and "use repeat: N" in found[0]


EXPANDED = """\
version: 1
defaults: {model: model_kling-v3-t2v-4k}
jobs:
  - id: weather
    prompts: [fog, rain]
    repeat: 2
  - id: rows
    promptsFile: rows.csv
  - id: lines
    promptsFile: lines.txt
    params: {duration: "10"}
"""


def test_expansion_gives_readable_stable_ids(tmp_path: Path, registry: SchemaRegistry) -> None:
    (tmp_path / "rows.csv").write_text(
        "id,prompt,cfgScale,generateAudio\nhero,a hero,0.3,false\n,a crowd,,\n"
    )
    (tmp_path / "lines.txt").write_text("# comment\nfirst\n\nsecond\n")
    jobs = load(tmp_path, registry, EXPANDED).jobs
    assert [j.id for j in jobs] == [
        "weather-0001",
        "weather-0001-r2",
        "weather-0002",
        "weather-0002-r2",
        "hero",
        "rows-0002",
        "lines-0001",
        "lines-0002",
    ]
    assert jobs[4].params == {"prompt": "a hero", "cfgScale": 0.3, "generateAudio": False}
    assert jobs[7].params == {"prompt": "second", "duration": "10"}
    assert (jobs[7].location.file, jobs[7].location.line) == (str(tmp_path / "lines.txt"), 4)


def test_problems_in_a_prompts_file_point_into_it(tmp_path: Path, registry: SchemaRegistry) -> None:
    (tmp_path / "rows.csv").write_text("prompt,duration\nok,5\nbad,20\n")
    (tmp_path / "lines.txt").write_text("x\n")
    [found] = problems(tmp_path, registry, EXPANDED)
    assert found.startswith(f"{tmp_path / 'rows.csv'}:3:1 job 'rows-0002'")
    assert "params.duration" in found


def test_expansion_mistakes(tmp_path: Path, registry: SchemaRegistry) -> None:
    text = """\
version: 1
defaults: {model: model_kling-v3-t2v-4k}
jobs:
  - {id: a, prompts: [], repeat: 0}
  - {id: b, prompts: [x], promptsFile: p.txt}
  - {id: c, promptsFile: missing.txt}
"""
    found = "\n".join(problems(tmp_path, registry, text))
    assert "prompts must be a non-empty list" in found
    assert "repeat must be a whole number" in found
    assert "prompts or promptsFile, not both" in found
    assert "promptsFile: file not found" in found


def test_settings_become_run_settings(tmp_path: Path, registry: SchemaRegistry) -> None:
    text = (
        MINIMAL
        + """settings:
  concurrency: 4
  modelConcurrency: {model_kling-v3-t2v-4k: 1}
  submitsPerSecond: 2.5
  downloadConcurrency: 3
  jobTimeout: 1800
  maxFailures: "10%"
  budget: 500
"""
    )
    settings = load(tmp_path, registry, text).settings
    assert settings == RunSettings(4, {"model_kling-v3-t2v-4k": 1}, 2.5, 3, 1800, "10%", 500)


def test_bad_settings_are_each_reported(tmp_path: Path, registry: SchemaRegistry) -> None:
    text = (
        MINIMAL
        + """settings:
  concurrency: 0
  modelConcurrency: {model_kling-v9: 1, model_kling-v3-t2v-4k: many}
  maxFailures: lots
  concurency: 3
"""
    )
    found = "\n".join(problems(tmp_path, registry, text))
    assert "settings.concurrency: 0 is not valid" in found
    assert "unknown model 'model_kling-v9'" in found
    assert "settings.modelConcurrency.model_kling-v3-t2v-4k" in found
    assert "settings.maxFailures" in found
    assert "did you mean 'concurrency'?" in found


def test_unknown_params_pass_with_a_warning_when_allowed(
    tmp_path: Path, registry: SchemaRegistry
) -> None:
    text = MINIMAL.replace(
        "startImage: knight.png", "startImage: knight.png\n      motionBrush: on"
    )
    assert "params.motionBrush: unknown parameter" in problems(tmp_path, registry, text)[0]
    manifest = load(tmp_path, registry, text, allow_unknown_params=True)
    assert manifest.jobs[0].params["motionBrush"] is True
    assert [w.path for w in manifest.warnings] == ["params.motionBrush"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("missing.png", "not found"),
        ("https://example.com/a.png", "is not a local file"),
        (".", "is not a file"),
    ],
)
def test_local_asset_files_are_checked(
    tmp_path: Path, registry: SchemaRegistry, value: str, message: str
) -> None:
    [found] = problems(tmp_path, registry, MINIMAL.replace("knight.png", value))
    assert "params.startImage" in found and message in found
    load(tmp_path, registry, MINIMAL.replace("knight.png", value), check_files=False)


def test_file_size_and_type_limits(tmp_path: Path, registry: SchemaRegistry) -> None:
    (tmp_path / "big.png").write_bytes(b"\0" * (10 * 1024 * 1024 + 1))
    (tmp_path / "clip.avi").write_bytes(b"\0")
    text = """\
version: 1
jobs:
  - {id: a, model: model_kling-v2-6-motion-control, params: {image: big.png, video: asset_v}}
  - {id: b, model: model_kling-v3-pro-motion-control, params: {image: asset_i, video: clip.avi}}
"""
    found = problems(tmp_path, registry, text)
    assert "file is 10.0 MiB; at most 10 MiB" in found[0]
    assert ".avi is not accepted" in found[1] and ".mp4" in found[1]


def test_asset_ids_are_not_files(tmp_path: Path, registry: SchemaRegistry) -> None:
    assert load(tmp_path, registry, MINIMAL.replace("knight.png", "asset_123")).jobs


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00", "png"),
        (b"\xff\xd8\xff\xdb", "jpeg"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "webp"),
        (b"GIF89a\x01\x00", "gif"),
        (b"GIF87a\x01\x00", "gif"),
        (b"\x00\x00\x00\x18ftypmp42", "mp4"),
        (b"\x00\x00\x00\x14ftypqt  ", "mp4"),
        (b"\x00\x00\x01\x00moov", "mp4"),
        (b"\x1a\x45\xdf\xa3\x9f", "webm"),
        (b"hello, world", None),
        (b"", None),
        (b"\x89PN", None),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),
    ],
)
def test_media_format_reads_the_first_bytes(head: bytes, expected: str | None) -> None:
    from runner.manifest.media import media_format

    assert media_format(head) == expected


@pytest.mark.parametrize(
    ("head", "kind", "name", "fragment"),
    [
        (b"\x89PNG\r\n\x1a\n", "image", "a.png", None),
        (b"\x89PNG\r\n\x1a\n", "image", "a", None),  # no extension: the bytes decide
        (b"\xff\xd8\xff\xe0", "image", "a.JPEG", None),
        (b"\x00\x00\x00\x18ftypisom", "video", "a.mov", None),  # one family: ISO media
        (b"\xff\xd8\xff\xe0", "image", "a.png", "rename it to .jpg"),
        (b"\x89PNG\r\n\x1a\n", "video", "a.mp4", "it is a PNG image"),
        (b"plain text", "image", "a.png", "'a.png' is not an image the API takes: it holds"),
        (b"\x00\x01\x02\xff\xfe", "image", "a.png", "no image or video format"),
    ],
)
def test_content_problem(head: bytes, kind: str, name: str, fragment: str | None) -> None:
    from runner.manifest.media import content_problem

    found = content_problem(head, kind, name)
    assert (found is None) == (fragment is None)
    if found is not None and fragment is not None:
        assert fragment in " — ".join(found)
