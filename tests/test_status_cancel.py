"""`kling-batch status` and `cancel` through `main([...])`, after runs against the simulator."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from runner.cli import main
from tests.helpers.runs import (
    background_simulator,
    finish,
    ledger_events,
    run_cli,
    start_run,
    status_json,
    t2v_jobs,
    wait_for_events,
    write_manifest,
)

pytestmark = pytest.mark.usefixtures("api_credentials")


def test_status_lists_never_submitted_jobs_and_says_what_comes_next(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(4))
    out = tmp_path / "out"
    with background_simulator(faults={"job_failure": 1.0}, credit_limit=2) as sim:
        assert run_cli(manifest, out, sim, "--concurrency", "1") == 3
        created = {j.job_id: j.status for j in sim.stats.jobs}
    rows = {r["id"]: r for r in status_json(out, capsys)}
    assert len(rows) == 4
    states = sorted(r["state"] for r in rows.values())
    assert states == ["failed", "failed", "pending", "pending"]
    for row in rows.values():
        if row["state"] == "failed":
            assert created[row["jobId"]] == "failure"
            assert "--retry-failed" in row["next"]
            assert row["error"]
        else:
            assert row["jobId"] is None and "will be submitted" in row["next"]
    assert main(["status", str(out)]) == 4  # work remains: two jobs pending
    text = capsys.readouterr().out
    assert "2 pending" in text and "2 failed" in text
    # Each job's cost, from the ledger's submitted records, beside the total.
    assert all(row["cost"] == 300 for row in rows.values() if row["state"] == "failed")
    assert all(row["cost"] == 0 for row in rows.values() if row["state"] == "pending")
    table = {line.split()[0]: line.split() for line in text.splitlines()[1:5]}
    assert table["clip-000"][3] == "300" and table["clip-002"][3] == "-"
    assert text.splitlines()[0].split()[3] == "CU"
    assert "600 CU spent" in text


def test_status_of_a_folder_without_a_run_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", str(tmp_path)]) == 2
    assert "holds no kling-batch run" in capsys.readouterr().err


@pytest.mark.parametrize("refuse", [False, True])
def test_cancel_asks_the_api_and_reports_refusals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], refuse: bool
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(3))
    out = tmp_path / "out"
    faults = {"cancel_refused": 1.0} if refuse else {}
    with background_simulator(job_seconds=(30.0, 30.0), faults=faults) as sim:
        proc = start_run(manifest, out, sim, "--concurrency", "3")
        wait_for_events(out, "submitted", 3)
        proc.send_signal(signal.SIGINT)  # drain: no new jobs; the three keep being followed
        time.sleep(0.2)
        capsys.readouterr()
        code = main(["cancel", str(out), "--base-url", sim.base_url])
        text = capsys.readouterr().out
        if refuse:
            proc.send_signal(signal.SIGINT)  # the jobs run on: stop the runner at once
        finish(proc, out, timeout=60)
        statuses = {j.status for j in sim.stats.jobs}
    if refuse:
        assert code == 1
        assert text.count("refused") >= 3 and "0 cancel request(s) accepted, 3 refused" in text
        assert "canceled" not in statuses
    else:
        assert code == 0
        assert "3 cancel request(s) accepted, 0 refused" in text
        assert statuses == {"canceled"}
        canceled = [e for e in ledger_events(out) if e["event"] == "canceled"]
        assert len(canceled) == 3  # recorded by the running runner's own polling
