"""Manifest inputs found in review that passed validation and then hurt a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.cli import main


def validate(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
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


def test_plan_json_of_a_broken_manifest_prints_its_problems_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(JOB + "    params: {prompt: a, duration: 5}\n")
    capsys.readouterr()
    assert main(["plan", str(path), "--json"]) == 2
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["problems"][0]["path"] == "params.duration"


def test_a_mistake_under_defaults_is_reported_once_with_its_reach(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = ("version: 1\ndefaults:\n  model: model_kling-v3-t2v-4k\n  params: {duration: 5}\n"
            "jobs:\n" + "".join(f"  - params: {{prompt: p{i}}}\n" for i in range(50)))
    code, err = validate(tmp_path, text, capsys)
    assert code == 2
    assert err.count("params.duration") == 1 and "(in 50 jobs)" in err
