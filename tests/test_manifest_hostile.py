"""Hostile and broken manifests: each refused with a located problem, never a traceback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

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
