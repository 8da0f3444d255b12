"""`kling-batch validate` and `plan` through `main([...])`: exit codes, text and --json;
`plan --estimate` pricing with dry runs against the simulator; output into a closed pipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runner.cli import main
from tests.helpers.runs import (
    background_simulator,
    ledger_events,
    run_cli,
    t2v_jobs,
    write_manifest,
)

REPO = Path(__file__).resolve().parent.parent
DEMO = str(REPO / "manifests" / "demo.yaml")
BROKEN = """\
version: 1
jobs:
  - id: knight-fog
    model: model_kling-v2-1-pro
    params: {prompt: A knight, startImage: asset_k, duration: 7, cfg_scale: 0.5}
"""


def write(tmp_path: Path, data: str | bytes) -> str:
    path = tmp_path / "m.yaml"
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return str(path)


def test_validate_accepts_the_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", DEMO]) == 0
    assert "ok, 6 job(s)" in capsys.readouterr().out


def test_validate_prints_every_problem_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, BROKEN)
    assert main(["validate", path]) == 2
    out = capsys.readouterr().out
    assert (
        f"{path}:5:53 job 'knight-fog' (model_kling-v2-1-pro): params.duration: "
        "7 is not one of ['5', '10'] — choices are strings, e.g. \"5\""
    ) in out
    assert "params.cfg_scale: unknown parameter — did you mean 'cfgScale'?" in out
    assert "2 error(s)" in out


def test_validate_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, BROKEN)
    assert main(["validate", path, "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["jobs"] is None
    first = report["problems"][0]
    assert first == {
        "file": path,
        "line": 5,
        "column": 53,
        "job": "knight-fog",
        "model": "model_kling-v2-1-pro",
        "path": "params.duration",
        "message": "7 is not one of ['5', '10']",
        "hint": 'choices are strings, e.g. "5"',
        "severity": "error",
    }


def test_validate_json_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", DEMO, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True, "jobs": 6, "problems": []}


def test_allow_unknown_params_warns_and_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, BROKEN.replace("duration: 7", 'duration: "5"'))
    assert main(["validate", path, "--allow-unknown-params", "--json"]) == 0
    [warning] = json.loads(capsys.readouterr().out)["problems"]
    assert warning["severity"] == "warning" and warning["path"] == "params.cfg_scale"


@pytest.mark.parametrize(
    "data", [bytes(range(256)), b"\x00\x01\x02", b"[[[", b"", b"- 1\n- 2\n", b"\xef\xbb\xbf"]
)
def test_garbage_never_shows_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes
) -> None:
    assert main(["validate", write(tmp_path, data)]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert "error(s)" in captured.out


def test_a_directory_and_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().out
    assert main(["validate", str(tmp_path / "absent.yaml"), "--json"]) == 2
    assert "file not found" in json.loads(capsys.readouterr().out)["problems"][0]["message"]


def test_plan_lists_jobs_counts_and_seconds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", DEMO]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["knight-fog", "model_kling-v2-1-pro", "5s"]
    assert "total: 6 job(s), 20 s of video + 2 job(s) as long as their driving video" in out


def test_plan_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", DEMO, "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [job["id"] for job in plan["jobs"]][:2] == ["knight-fog", "city-rain"]
    assert plan["jobs"][3]["seconds"] is None  # motion control: as long as its video
    assert plan["perModel"]["model_kling-v2-1-pro"] == 2
    assert (plan["totalSeconds"], plan["unknownLength"]) == (20, 2)


def test_plan_of_a_broken_manifest_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", write(tmp_path, BROKEN)]) == 2
    err = capsys.readouterr().err
    assert "params.duration" in err and "Traceback" not in err


def test_plan_json_of_a_broken_manifest_prints_its_problems_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("version: 1\njobs:\n  - id: a\n    model: model_kling-v3-t2v-4k\n"
                    "    params: {prompt: a, duration: 5}\n")
    capsys.readouterr()
    assert main(["plan", str(path), "--json"]) == 2
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["problems"][0]["path"] == "params.duration"


def test_plan_expands_a_dataset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(REPO / "manifests" / "dataset.yaml"), "--json"]) == 0
    ids = [job["id"] for job in json.loads(capsys.readouterr().out)["jobs"]]
    assert ids[:2] == ["weather-0001", "weather-0001-r2"] and "harbor-dawn" in ids


@pytest.mark.usefixtures("api_credentials")
def test_plan_estimate_prices_with_dry_runs_and_creates_no_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(5))
    with background_simulator() as sim:
        code = main(["plan", str(manifest), "--estimate", "--json", "--base-url",
                     sim.base_url, "-o", str(tmp_path / "out")])
        assert code == 0
        plan = json.loads(capsys.readouterr().out)
        assert sim.stats.jobs == []
        assert sim.stats.dry_runs == 1  # five jobs, one price shape
        out = tmp_path / "out"
        assert run_cli(manifest, out, sim) == 0
        charged = sim.stats.creative_units_charged
    assert plan["estimate"]["totalCU"] == charged
    assert plan["estimate"]["perModelCU"] == {"model_kling-v3-t2v-4k": charged}
    recorded = sum(e["cost"] for e in ledger_events(out) if e["event"] == "submitted")
    assert recorded == charged


@pytest.mark.usefixtures("api_credentials")
def test_plan_estimate_without_credentials_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SCENARIO_SDK_API_KEY")
    manifest = write_manifest(tmp_path, t2v_jobs(1))
    assert main(["plan", str(manifest), "--estimate"]) == 2
    assert "SCENARIO_SDK_API_KEY" in capsys.readouterr().err


def test_output_into_a_closed_pipe_is_not_a_traceback(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(3))
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line (`| head` that quit)
    try:
        plan = subprocess.run([sys.executable, "-m", "runner", "plan", str(manifest)],
                              stdout=write_end, stderr=subprocess.PIPE, timeout=60,
                              check=False)
    finally:
        os.close(write_end)
    assert plan.returncode == 0, plan.stderr
    assert b"Traceback" not in plan.stderr and b"BrokenPipe" not in plan.stderr
