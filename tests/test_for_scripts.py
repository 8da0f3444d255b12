"""What scripts and dashboards rely on: `run --events`, `run -q`, `status`'s exit codes —
through the CLI, in-process and as real processes, against the simulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runner.cli import main
from tests.helpers.runs import (
    REPO,
    background_simulator,
    ledger_events,
    run_cli,
    status_json,
    t2v_jobs,
    write_manifest,
)

pytestmark = pytest.mark.usefixtures("api_credentials")

_FAST = ["--poll-interval", "0.05", "--poll-max", "0.2", "--listings-per-second", "20",
         "--settle", "0.5"]


def _process(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SCENARIO_SDK_API_KEY": "k", "SCENARIO_SDK_API_SECRET": "s",
           "PYTHONPATH": str(REPO)}
    env.pop("SCENARIO_SDK_JWT", None)
    return subprocess.run([sys.executable, "-m", "runner", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_events_file_has_one_line_per_transition_as_the_ledger_has_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(4))
    out = tmp_path / "out"
    stream = tmp_path / "events.jsonl"
    with background_simulator(faults={"job_failure": 0.5}, seed=3) as sim:
        code = run_cli(manifest, out, sim, "--events", str(stream), "--auto-retries", "0")
    events = _lines(stream.read_text())
    ledger = ledger_events(out)
    # The same transitions as the ledger, each job's in the same order: nothing missing,
    # nothing more (two jobs' lines written together may be told in either order).
    def per_job(lines: list[dict[str, Any]]) -> dict[str, list[str]]:
        jobs: dict[str, list[str]] = {}
        for line in lines:
            jobs.setdefault(line["job"], []).append(line["event"])
        return jobs

    assert per_job(events) == per_job(ledger)
    for line in events:
        assert {"ts", "job", "event", "state", "previous"} <= set(line)
        assert "body" not in line and "params" not in line
    submitted = [e for e in events if e["event"] == "submitted"]
    assert len(submitted) == 4
    assert all(e["jobId"] and e["model"] == "model_kling-v3-t2v-4k" and e["attempt"] == 1
               and e["state"] == "submitted" for e in submitted)
    finals = {e["job"]: e for e in events if e["event"] in ("succeeded", "failed")}
    assert len(finals) == 4
    failed = [e for e in finals.values() if e["event"] == "failed"]
    assert failed, "the seed makes some jobs fail"
    assert all(e["state"] == "failed" and e["error"] for e in failed)
    assert code == 1
    downloaded = [e for e in events if e["event"] == "downloaded"]
    assert {e["job"] for e in downloaded} == {j for j, e in finals.items()
                                              if e["event"] == "succeeded"}
    assert all(e["path"] and e["sha256"] and e["state"] == "succeeded" for e in downloaded)
    rows = {r["id"]: r["state"] for r in status_json(out, capsys, code=1)}
    assert {j: e["state"] for j, e in finals.items()} == rows


def test_events_to_stdout_leaves_stdout_to_the_stream_and_the_summary_to_stderr(
    tmp_path: Path,
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(3))
    out = tmp_path / "out"
    with background_simulator() as sim:
        done = _process("run", str(manifest), "-o", str(out), "--base-url", sim.base_url,
                        *_FAST, "--events", "-")
    assert done.returncode == 0, done.stderr
    events = _lines(done.stdout)  # every stdout line is one JSON object
    assert sum(e["event"] == "downloaded" for e in events) == 3
    assert "3 succeeded" in done.stderr


def test_quiet_prints_nothing_but_errors(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(2))
    out = tmp_path / "out"
    with background_simulator() as sim:
        done = _process("run", str(manifest), "-o", str(out), "--base-url", sim.base_url,
                        *_FAST, "-q")
        assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
        loud = _process("run", str(manifest), "-o", str(out), "--base-url", sim.base_url,
                        *_FAST)
        assert "2 succeeded" in loud.stdout and loud.stderr  # without -q: summary, progress
        wrong = _process("run", str(manifest), "-o", str(out), "--base-url", sim.base_url,
                         "-q", "--only", "nothing-like-it")
    assert wrong.returncode == 2 and wrong.stdout == ""
    assert "matches no job id" in wrong.stderr


def test_status_exit_codes_say_done_failed_or_work_remaining(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(3))
    out = tmp_path / "out"
    with background_simulator() as sim:
        assert run_cli(manifest, out, sim, "--limit", "1") == 0
        assert main(["status", str(out)]) == 4  # two jobs pending
        assert run_cli(manifest, out, sim) == 0
        assert main(["status", str(out)]) == 0
        assert main(["status", str(out), "--json"]) == 0
    capsys.readouterr()
    # A job canceled, nothing remaining: 1.
    out2 = tmp_path / "out2"
    with background_simulator() as sim:
        assert run_cli(manifest, out2, sim, "--only", "clip-00[01]") == 0
        assert main(["cancel", str(out2), "clip-002"]) == 0
    assert main(["status", str(out2)]) == 1
    assert main(["status", str(out2), "--json"]) == 1
    capsys.readouterr()
    assert main(["status", str(tmp_path / "nowhere")]) == 2
    help_text = subprocess.run([sys.executable, "-m", "runner", "status", "--help"],
                               env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO,
                               capture_output=True, text=True, check=True).stdout
    assert "4 work remains" in " ".join(help_text.split())
