"""`cancel DIR ID|GLOB …`: some jobs, in flight or not yet submitted, with or without a run
holding the folder — through the CLI (in-process and as a real process), against the
simulator. Canceled means canceled: a live run submits none of the jobs named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.cli import main
from runner.outdir import hold_lock
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


def _posted(out: Path) -> set[str]:
    """The jobs whose generate POST was at least intended (an intent precedes every POST)."""
    return {e["job"] for e in ledger_events(out) if e["event"] == "intent"}


def test_cancel_during_a_live_run_stops_those_jobs_and_the_run_refills_none_of_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(22))
    out = tmp_path / "out"
    with background_simulator(job_seconds=(4.0, 4.0)) as sim:
        # clip-020 and clip-021 are left out of this run, and cancelled during it too.
        proc = start_run(manifest, out, sim, "--concurrency", "5", "--only", "clip-0[01]*")
        wait_for_events(out, "submitted", 5)
        capsys.readouterr()
        code = main(["cancel", str(out), "clip-000", "clip-01*", "clip-02*",
                     "--base-url", sim.base_url])
        captured = capsys.readouterr()
        posts_at_cancel = sum(sim.stats.submissions_by_fingerprint.values())
        log = finish(proc, out, timeout=120)
        sim_status = {j.job_id: j.status for j in sim.stats.jobs}
        posts = sum(sim.stats.submissions_by_fingerprint.values())
    assert code == 0, captured
    assert "12 job(s) not submitted yet: the run holding the folder will not submit them" \
        in captured.out
    assert "1 cancel request(s) accepted, 0 refused" in captured.out
    assert proc.returncode == 1, log  # some jobs canceled (product.md's exit codes)
    # None of the cancelled pending jobs was ever posted; the run posted only the rest.
    cancelled_pending = {f"clip-{i:03d}" for i in range(10, 22)}
    assert not (_posted(out) & cancelled_pending)
    assert posts == 10 and posts_at_cancel <= 10
    rows = {r["id"]: r for r in status_json(out, capsys, code=1)}
    assert {j for j, r in rows.items() if r["state"] == "canceled"} == cancelled_pending | {
        "clip-000"}
    assert sim_status[rows["clip-000"]["jobId"]] == "canceled"  # at the API, by cancel
    assert all(rows[f"clip-{i:03d}"]["state"] == "succeeded" for i in range(1, 10))
    assert all(rows[j]["jobId"] is None and "kling-batch cancel" in rows[j]["error"]
               for j in cancelled_pending)
    # The jobs outside the run are in its ledger, not in its counters.
    final = [line for line in log.splitlines() if "pending" in line and "succeeded" in line]
    assert "pending 0 " in final[-1] and "canceled 11" in final[-1], final[-1]
    # The requests were carried out: the file is empty for the next run.
    assert (out / "cancel-requests.jsonl").read_bytes() == b""


def test_cancel_without_a_run_cancels_pending_jobs_locally_and_retry_brings_one_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(5))
    out = tmp_path / "out"
    with background_simulator() as sim:
        assert run_cli(manifest, out, sim, "--limit", "2") == 0
        # Pending jobs need no API: no credentials at all.
        with monkeypatch.context() as bare:
            for name in ("SCENARIO_SDK_API_KEY", "SCENARIO_SDK_API_SECRET", "SCENARIO_SDK_JWT"):
                bare.delenv(name, raising=False)
            capsys.readouterr()
            assert main(["cancel", str(out), "clip-00[2-3]"]) == 0
            assert "2 job(s) not submitted yet: canceled" in capsys.readouterr().out
        assert run_cli(manifest, out, sim) == 1  # the plain run: two jobs canceled
        assert _posted(out) == {"clip-000", "clip-001", "clip-004"}
        assert run_cli(manifest, out, sim, "--retry-failed", "--only", "clip-002") == 0
        assert _posted(out) == {"clip-000", "clip-001", "clip-002", "clip-004"}
        assert sum(sim.stats.submissions_by_fingerprint.values()) == 4
    states = {r["id"]: r["state"] for r in status_json(out, capsys, code=1)}
    assert states["clip-003"] == "canceled" and states["clip-002"] == "succeeded"


def test_a_request_no_run_lived_to_read_is_carried_out_by_the_next_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(4))
    out = tmp_path / "out"
    with background_simulator() as sim:
        assert run_cli(manifest, out, sim, "--limit", "1") == 0
        with hold_lock(out):  # as a run that is then killed would
            capsys.readouterr()
            assert main(["cancel", str(out), "clip-003"]) == 0
            captured = capsys.readouterr()
        assert "a run holds this folder" in captured.err
        request = json.loads((out / "cancel-requests.jsonl").read_text())
        assert request["jobs"] == ["clip-003"] and request["asked"] == []
        assert run_cli(manifest, out, sim) == 1
        assert _posted(out) == {"clip-000", "clip-001", "clip-002"}
    assert (out / "cancel-requests.jsonl").read_bytes() == b""


def test_cancel_patterns_naming_no_job_are_exit_2_with_a_guess(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(3))
    out = tmp_path / "out"
    with background_simulator() as sim:
        assert run_cli(manifest, out, sim, "--limit", "1") == 0
    capsys.readouterr()
    assert main(["cancel", str(out), "clip-0001"]) == 2
    assert "did you mean 'clip-001'?" in capsys.readouterr().err
    assert main(["cancel", str(out), "clip-000"]) == 0  # done: nothing to cancel
    assert "nothing to cancel" in capsys.readouterr().out
