"""Nothing lost, nothing paid twice — proven by killing real processes.

A real `python -m runner run` subprocess runs against the simulator (served in this test
process) with its 5xx-after-create and reset-after-create faults on; it is SIGKILLed at
random moments, resumed each time, and at the end the simulator's own accounting must show
every request fingerprint submitted exactly once and the output folder a verified file per
job. The interrupt tests send SIGINT/SIGTERM and check the drain and the hard stop.
"""

from __future__ import annotations

import json
import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from runner.ledger import JsonlLedger, replay
from tests.helpers.runs import (
    background_simulator,
    finish,
    ledger_events,
    sha256_of,
    start_run,
    t2v_jobs,
    wait_for_events,
    write_manifest,
)


@pytest.mark.slow
def test_sigkill_at_random_moments_never_loses_or_double_pays(tmp_path: Path) -> None:
    jobs = t2v_jobs(300, prefix="k")
    # A few repeats of one body: reconciliation must match those by count.
    jobs += [{"id": f"same-{i}", "model": "model_kling-v3-t2v-4k",
              "params": {"prompt": "One identical shot", "duration": "5"}} for i in range(6)]
    manifest = write_manifest(tmp_path, jobs)
    out = tmp_path / "out"
    rng = random.Random(20261121)
    kills = 0
    faults = {"error_after_create": 0.1, "reset_after_create": 0.05, "server_error": 0.05}
    with background_simulator(seed=11, faults=faults, job_seconds=(0.5, 1.5)) as sim:
        while kills < 25:
            proc = start_run(manifest, out, sim, "--concurrency", "12")
            time.sleep(rng.uniform(0.5, 1.8))
            if proc.poll() is not None:
                break  # finished before the kill: the batch is done
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            kills += 1
        final = start_run(manifest, out, sim, "--concurrency", "24")
        log = finish(final, out, timeout=300)
        counts = sim.stats.submissions_by_fingerprint
        created = sim.stats.jobs
    # Money first: a body billed twice is the failure this test exists for (it is what
    # disabling reconciliation makes it report).
    distinct = {json.dumps(j["params"], sort_keys=True) for j in jobs}
    assert len(counts) == len(distinct)
    repeated = Counter(counts.values())
    assert repeated == {1: len(distinct) - 1, 6: 1}, repeated  # 6 = the six identical repeats
    assert final.returncode == 0, log
    assert kills >= 20, f"the batch finished after {kills} kills"
    records = replay(JsonlLedger(out).read_events())
    assert len(records) == len(jobs)
    adopted_ids = {r.job_id for r in records.values()}
    assert adopted_ids == {j.job_id for j in created}  # every paid job belongs to a manifest job
    for record in records.values():
        (asset,) = record.assets
        path = out / asset.path
        assert sha256_of(path) == asset.sha256 and path.stat().st_size == asset.bytes
    meta = (out / "metadata.jsonl").read_text().splitlines()
    assert len(meta) == len(jobs)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_drains_in_flight_jobs_then_exits_130(
    tmp_path: Path, signum: signal.Signals
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(30))
    out = tmp_path / "out"
    with background_simulator(job_seconds=(0.6, 0.9)) as sim:
        proc = start_run(manifest, out, sim, "--concurrency", "4")
        wait_for_events(out, "submitted", 4)
        proc.send_signal(signum)
        log = finish(proc, out, timeout=60)
        assert proc.returncode == 130, log
        assert "draining" in log
        created = len(sim.stats.jobs)
    events = ledger_events(out)
    submitted = {e["job"] for e in events if e["event"] == "submitted"}
    downloaded = {e["job"] for e in events if e["event"] == "downloaded"}
    assert len(submitted) == created < 30  # no new submissions after the signal
    assert downloaded == submitted  # every job in flight was followed to its file


def test_second_signal_stops_at_once_with_every_job_id_recorded(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(30))
    out = tmp_path / "out"
    with background_simulator(job_seconds=(5.0, 6.0)) as sim:
        proc = start_run(manifest, out, sim, "--concurrency", "6")
        wait_for_events(out, "submitted", 6)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        log = finish(proc, out, timeout=30)
        assert proc.returncode == 130, log
        assert time.monotonic() - started < 4.0  # did not wait for the 5 s jobs
        created = {j.job_id for j in sim.stats.jobs}
    recorded = {e["jobId"] for e in ledger_events(out) if e["event"] == "submitted"}
    assert recorded == created
