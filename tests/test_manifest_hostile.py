"""Hostile and broken manifests: each refused with a located problem, never a traceback.

The last ones go through `kling-batch validate`: inputs that once passed validation and then
hurt a run (values JSON cannot carry, keys that are not text, an expansion past the job cap,
a CSV row cut at an unquoted comma, settings that are not a mapping, one mistake under
`defaults` reported once for every job it reaches).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from runner.cli import main
from runner.domain import Problem
from runner.errors import ManifestError
from runner.manifest import load_manifest, yaml_source
from runner.schemas import SchemaRegistry


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    return SchemaRegistry.load()


def refuse(path: Path, registry: SchemaRegistry) -> list[Problem]:
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, registry)
    return list(caught.value.problems)


def refuse_text(tmp_path: Path, registry: SchemaRegistry, data: str | bytes) -> list[Problem]:
    path = tmp_path / "m.yaml"
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return refuse(path, registry)


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n"
    for i in range(8)
)

# (case, text, message fragment, line, column)
CASES = [
    ("empty", "", "the manifest is empty", 1, 1),
    ("only comments", "# nothing\n", "the manifest is empty", 1, 1),
    ("a list at the top", "- a\n- b\n", "found a list at the top", 1, 1),
    ("a scalar at the top", "hello\n", "found a str at the top", 1, 1),
    ("tabs", "version: 1\njobs:\n\t- id: a\n", "indent with spaces", 3, 1),
    ("syntax", "jobs: [a, b\n", "YAML syntax error", 2, 1),
    ("alias bomb", BOMB, "alias bomb", 7, 8),
    ("recursive alias", "jobs: &j [*j]\n", "refers to itself", 1, 11),
    ("undefined alias", "jobs: *nope\n", "no anchor", 1, 7),
    ("deep nesting", "jobs: " + "[" * 200 + "]" * 200 + "\n", "nested deeper than 64", 1, 70),
    ("two documents", "version: 1\n---\nversion: 1\n", "more than one YAML document", 2, 1),
    (
        "python tag",
        "version: 1\njobs: !!python/object/apply:os.system [ls]\n",
        "unsupported YAML tag",
        2,
        7,
    ),
    ("control character", "version: 1\njobs: \x07\n", "U+0007", 2, 7),
    ("duplicate key", "version: 1\nversion: 1\njobs: []\n", "duplicate key 'version'", 2, 1),
    ("unknown top key", "version: 1\njbos: []\n", "did you mean 'jobs'?", 2, 1),
    ("no jobs", "version: 1\n", "no jobs", 1, 1),
    ("jobs not a list", "version: 1\njobs: {a: 1}\n", "no jobs", 2, 1),
    ("job not a mapping", "version: 1\njobs: [5]\n", "jobs[0] must be a mapping", 2, 8),
    ("bad version", "version: 2\njobs: []\n", "unsupported version 2", 1, 1),
    ("defaults not a mapping", "defaults: [1]\njobs: []\n", "defaults must be a mapping", 1, 1),
]


@pytest.mark.parametrize(
    ("text", "fragment", "where"),
    [(c[1], c[2], (c[3], c[4])) for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_hostile_text_is_one_located_problem(
    tmp_path: Path, registry: SchemaRegistry, text: str, fragment: str, where: tuple[int, int]
) -> None:
    found = refuse_text(tmp_path, registry, text)
    match = [p for p in found if fragment in str(p)]
    assert match, [str(p) for p in found]
    assert match[0].location is not None
    assert (match[0].location.line, match[0].location.column) == where


def test_an_alias_bomb_fails_fast(tmp_path: Path, registry: SchemaRegistry) -> None:
    started = time.perf_counter()
    refuse_text(tmp_path, registry, BOMB + "i: [" + ", ".join(["*h"] * 9) + "]\n")
    assert time.perf_counter() - started < 2


def test_legitimate_aliases_and_merge_keys_work(tmp_path: Path, registry: SchemaRegistry) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "version: 1\njobs:\n"
        "  - &base {id: a, model: model_kling-v3-t2v-4k, params: {prompt: p, duration: '5'}}\n"
        "  - {<<: *base, id: b}\n"
    )
    jobs = load_manifest(path, registry).jobs
    assert [j.id for j in jobs] == ["a", "b"] and jobs[1].params == jobs[0].params


def test_non_utf8_bytes_point_at_the_byte(tmp_path: Path, registry: SchemaRegistry) -> None:
    [problem] = refuse_text(tmp_path, registry, b"version: 1\njobs: [caf\xe9]\n")
    assert "0xe9 is not UTF-8" in problem.message
    where = problem.location
    assert where is not None and (where.line, where.column) == (2, 11)


@pytest.mark.parametrize("garbage", [bytes(range(256)), b"\x00" * 100, b"\xff\xfe\x00\x00junk"])
def test_garbage_bytes_are_refused(
    tmp_path: Path, registry: SchemaRegistry, garbage: bytes
) -> None:
    assert refuse_text(tmp_path, registry, garbage)


def test_oversized_files_are_refused_before_parsing(
    tmp_path: Path, registry: SchemaRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(yaml_source, "MAX_BYTES", 100)
    [problem] = refuse_text(tmp_path, registry, "version: 1\n" + "#" * 200 + "\n")
    assert "larger than" in problem.message


def test_a_directory_and_a_missing_file(tmp_path: Path, registry: SchemaRegistry) -> None:
    assert "is a directory" in refuse(tmp_path, registry)[0].message
    assert "file not found" in refuse(tmp_path / "absent.yaml", registry)[0].message


@pytest.mark.parametrize(
    ("job_id", "fragment"),
    [
        ("'../etc/passwd'", "invalid id"),
        ("'..'", "invalid id"),
        ("'.'", "invalid id"),
        ("'a b'", "invalid id"),
        ("'" + "a" * 129 + "'", "invalid id"),
        ("''", "invalid id"),
        ("123", "id must be a string"),
    ],
)
def test_bad_ids(tmp_path: Path, registry: SchemaRegistry, job_id: str, fragment: str) -> None:
    job = f"{{id: {job_id}, model: model_kling-v3-t2v-4k, params: {{prompt: p}}}}"
    text = f"version: 1\njobs:\n  - {job}\n"
    [problem] = refuse_text(tmp_path, registry, text)
    assert fragment in problem.message and problem.path == "id"


def test_duplicate_ids_even_by_case(tmp_path: Path, registry: SchemaRegistry) -> None:
    job = "  - {{id: {}, model: model_kling-v3-t2v-4k, params: {{prompt: p}}}}\n"
    text = "version: 1\njobs:\n" + job.format("a") + job.format("a") + job.format("A")
    found = refuse_text(tmp_path, registry, text)
    assert [p.location.line for p in found if p.location] == [4, 5]
    assert "differing only by case" in found[1].message


def test_every_problem_comes_at_once(tmp_path: Path, registry: SchemaRegistry) -> None:
    text = """\
version: 1
extra: 1
jobs:
  - id: a
    model: model_kling-v2-1-pro
    params: {prompt: p, startImage: asset_x, duration: 7, cfg_scale: 1}
  - id: b
    model: model_kling-v3-t2v-4k
    params: {prompt: p, aspectRatio: "4:3"}
  - id: a
    model: model_kling-v9
"""
    found = refuse_text(tmp_path, registry, text)
    assert [(p.location.line if p.location else 0, p.path) for p in found] == [
        (2, None),
        (6, "params.duration"),
        (6, "params.cfg_scale"),
        (9, "params.aspectRatio"),
        (10, "id"),
        (10, "model"),
    ]
    assert found[1].job == "a" and found[1].model == "model_kling-v2-1-pro"


# --- through `kling-batch validate`: inputs that passed validation and then hurt a run -----


def validate(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`kling-batch validate` of `text` as m.yaml: (exit code, stdout + stderr)."""
    path = tmp_path / "m.yaml"
    path.write_text(text)
    capsys.readouterr()
    code = main(["validate", str(path)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


JOB = "version: 1\njobs:\n  - id: a\n    model: model_kling-v3-t2v-4k\n"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("{prompt: hi, cfgScale: .nan}", "m.yaml:5:26 job 'a' (model_kling-v3-t2v-4k): "
         "params.cfgScale: nan is not a number a request can carry"),
        ("{prompt: hi, negativePrompt: x, cfgScale: -.inf}", "params.cfgScale: -inf is not"),
        ("{prompt: hi, 1: x}", "params.1: key 1 is not text"),
        ("{prompt: hi, ~: x}", "params.None: key None is not text"),
    ],
)
def test_values_json_cannot_carry_are_refused_at_their_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], params: str, expected: str
) -> None:
    code, err = validate(tmp_path, JOB + f"    params: {params}\n", capsys)
    assert code == 2 and expected in err and "Traceback" not in err


def test_a_job_without_id_and_a_non_text_key_does_not_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "version: 1\njobs:\n  - model: model_kling-v3-t2v-4k\n    params: {prompt: a, 1: x}\n"
    code, err = validate(tmp_path, text, capsys)
    assert code == 2 and "key 1 is not text" in err


def test_expansion_past_the_job_cap_is_refused_before_it_is_built(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "p.txt").write_text("\n".join(f"prompt {i}" for i in range(200)))
    text = ("version: 1\njobs:\n  - id: big\n    model: model_kling-v3-t2v-4k\n"
            "    promptsFile: p.txt\n    repeat: 10000\n")
    code, err = validate(tmp_path, text, capsys)
    assert code == 2 and "more than 1,000,000 jobs" in err and "m.yaml:3:5" in err


def test_a_csv_row_with_an_unquoted_comma_is_an_error_not_a_cut_prompt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "p.csv").write_text('prompt\n"A knight, in fog"\nA knight, in fog\n')
    text = ("version: 1\njobs:\n  - id: c\n    model: model_kling-v3-t2v-4k\n"
            "    promptsFile: p.csv\n")
    code, err = validate(tmp_path, text, capsys)
    assert code == 2 and "p.csv:3:1" in err and "quote cells" in err


def test_a_settings_block_that_is_not_a_mapping_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = JOB.replace("jobs:", "settings: [concurrency, 2]\njobs:") + "    params: {prompt: a}\n"
    code, err = validate(tmp_path, text, capsys)
    assert code == 2 and "m.yaml:2:1: settings: settings must be a mapping" in err


def test_a_mistake_under_defaults_is_reported_once_with_its_reach(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = ("version: 1\ndefaults:\n  model: model_kling-v3-t2v-4k\n  params: {duration: 5}\n"
            "jobs:\n" + "".join(f"  - params: {{prompt: p{i}}}\n" for i in range(50)))
    code, err = validate(tmp_path, text, capsys)
    assert code == 2
    assert err.count("params.duration") == 1 and "(in 50 jobs)" in err
