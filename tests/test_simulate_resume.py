"""`run --simulate` interrupted and resumed like a real run: the in-process simulator keeps
its jobs in `DIR/.simulator/state.json`, so the next `--simulate` run into the folder finds
the jobs the first one left in flight (no 404, nothing lost, nothing posted twice).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from runner.cli import main
from tests.helpers.runs import REPO, ledger_events, t2v_jobs, wait_for_events, write_manifest


def simulated_run(manifest: Path, out: Path, *extra: str) -> subprocess.Popen[bytes]:
    log = out.parent / "run.log"
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "runner", "run", str(manifest), "-o", str(out), "--simulate",
             "-q", *extra],
            env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=sink, stderr=sink,
        )


def wait_for_log(log: Path, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text(errors="replace"):
            return
        time.sleep(0.02)
    raise AssertionError(f"no {text!r} in {log}")


def test_an_interrupted_simulated_run_resumes_its_jobs(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(6))
    out = tmp_path / "out"
    proc = simulated_run(manifest, out, "--sim-job-seconds", "3", "5", "--concurrency", "3")
    wait_for_events(out, "submitted", 3)
    proc.send_signal(signal.SIGINT)  # drain ...
    wait_for_log(tmp_path / "run.log", "draining")
    proc.send_signal(signal.SIGINT)  # ... and stop now: three jobs left at the simulator
    assert proc.wait(timeout=60) == 130
    state = json.loads((out / ".simulator" / "state.json").read_text())
    assert len(state["jobs"]) == 3
    in_flight = {e["jobId"] for e in ledger_events(out) if e["event"] == "submitted"}
    assert in_flight == {job["jobId"] for job in state["jobs"]}

    assert main(["run", str(manifest), "-o", str(out), "--simulate", "-q"]) == 0

    events = ledger_events(out)
    submitted = Counter(e["job"] for e in events if e["event"] == "submitted")
    assert sorted(submitted.values()) == [1] * 6  # every job posted once, across both runs
    assert not [e for e in events if e["event"] in ("lost", "failed")]
    state = json.loads((out / ".simulator" / "state.json").read_text())
    assert sorted(state["submissionsByFingerprint"].values()) == [1] * 6
    assert sorted(state["generateAttemptsByFingerprint"].values()) == [1] * 6
    assert len(list((out / "videos").glob("*.mp4"))) == 6


def test_sim_job_seconds_is_checked(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(1))
    code = main(["run", str(manifest), "-o", str(tmp_path / "out"), "--simulate", "-q",
                 "--sim-job-seconds", "5", "3"])
    assert code == 2
    assert not (tmp_path / "out" / "ledger.jsonl").exists() or not [
        e for e in ledger_events(tmp_path / "out") if e["event"] == "intent"]


async def test_a_simulator_on_a_state_file_knows_the_jobs_of_the_last_one(
    tmp_path: Path,
) -> None:
    import aiohttp

    from runner.simulator import SimulatorConfig, start_simulator
    from tests.helpers.simulator import SimClient

    state = tmp_path / "sim" / "state.json"
    config = SimulatorConfig(job_seconds=(0.3, 0.3), state_file=state)
    body = {"prompt": "a lighthouse", "duration": "5"}
    async with aiohttp.ClientSession() as session:
        async with start_simulator(config) as sim:
            client = SimClient(session, sim)
            status, _, created = await client.call(
                "POST", "/generate/custom/model_kling-v3-t2v-4k", json=body)
            assert status == 200
            job_id = created["job"]["jobId"]
        assert state.exists()  # saved when it stopped
        async with start_simulator(config) as sim:  # another process's simulator, later
            client = SimClient(session, sim)
            job = await client.wait_job(job_id)  # known, and it went on running
            assert job["status"] == "success"
            [asset] = job["metadata"]["assetIds"]
            status, _, found = await client.call("GET", f"/assets/{asset}")
            assert status == 200 and found["asset"]["url"].startswith(sim.cdn_url)
            status, _, again = await client.call(
                "POST", "/generate/custom/model_kling-v3-t2v-4k", json=body)
            assert again["job"]["jobId"] != job_id  # the id counters went on too
            assert sim.stats.submissions_by_fingerprint.total() == 2


def test_simulate_takes_a_state_file(tmp_path: Path) -> None:
    from runner.cli.simulate import config_from_argv

    assert config_from_argv(["--state-file", str(tmp_path / "s.json")]).state_file == \
        tmp_path / "s.json"
