"""`kling-batch run` end to end: the CLI, over real HTTP, against the simulator.

Each test checks what a user relies on (exit code, files, ledger, status) and what only the
server can tell (submissions per request fingerprint, jobs in flight, headers at the CDN).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from runner.cli import main
from runner.ledger import Downloaded, Intended, JsonlLedger, encode_event
from runner.simulator import Simulator
from tests.helpers.media import png_bytes
from tests.helpers.runs import (
    ALL_MODELS,
    background_simulator,
    ledger_events,
    make_assets,
    run_cli,
    sha256_of,
    status_json,
    t2v_jobs,
    write_manifest,
)

pytestmark = pytest.mark.usefixtures("api_credentials")


def assert_each_submitted_once(sim: Simulator) -> None:
    counts = sim.stats.submissions_by_fingerprint
    assert counts, "nothing was submitted"
    assert max(counts.values()) == 1, counts


def test_all_five_models_end_to_end_with_uploads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_assets(tmp_path / "assets")
    manifest = write_manifest(tmp_path, ALL_MODELS)
    out = tmp_path / "out"
    with background_simulator() as sim:
        assert run_cli(manifest, out, sim) == 0
        assert_each_submitted_once(sim)
        sim_jobs = {j.job_id: j for j in sim.stats.jobs}
        uploads = sim.stats.requests_by_endpoint
        assert sim.stats.cdn_authorization_headers == []
    # The image is uploaded once through /assets, the video once through /uploads.
    assert uploads["POST /v1/assets"] == 1, uploads
    assert uploads["POST /v1/uploads"] == 1, uploads
    rows = status_json(out, capsys)
    assert {r["id"] for r in rows} == {j["id"] for j in ALL_MODELS}
    for row in rows:
        assert row["state"] == "succeeded"
        assert sim_jobs[row["jobId"]].status == "success"
        (asset,) = row["assets"]
        path = out / asset["path"]
        assert path.name == f"{row['id']}.mp4"
        assert sha256_of(path) == asset["sha256"]
        assert path.stat().st_size == asset["bytes"]
    meta = [json.loads(x) for x in (out / "metadata.jsonl").read_text().splitlines()]
    assert {m["job"] for m in meta} == {j["id"] for j in ALL_MODELS}
    assert all((out / m["file_name"]).exists() for m in meta)


def test_concurrency_limit_is_never_exceeded_at_the_server(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(24))
    with background_simulator(job_seconds=(0.05, 0.15)) as sim:
        assert run_cli(manifest, tmp_path / "out", sim, "--concurrency", "3") == 0
        assert sim.stats.max_jobs_in_flight <= 3
        assert sim.stats.max_jobs_in_flight >= 2  # the limit was actually reached for
        assert sum(sim.stats.submissions_by_fingerprint.values()) == 24


def test_a_5xx_after_the_job_was_created_is_reconciled_not_reposted(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(6))
    out = tmp_path / "out"
    with background_simulator(faults={"error_after_create": 1.0}) as sim:
        assert run_cli(manifest, out, sim) == 0
        assert_each_submitted_once(sim)
        assert sum(sim.stats.generate_attempts_by_fingerprint.values()) == 6
    events = ledger_events(out)
    assert Counter(e["event"] for e in events)["unknown"] == 6
    adopted = [e for e in events if e["event"] == "submitted" and e.get("reconciled")]
    assert len(adopted) == 6


def test_identical_bodies_are_reconciled_by_count(tmp_path: Path) -> None:
    same = {"model": "model_kling-v3-t2v-4k",
            "params": {"prompt": "The same shot", "duration": "5"}}
    jobs = [{"id": f"rep-{i}", **same} for i in range(4)]
    manifest = write_manifest(tmp_path, jobs)
    out = tmp_path / "out"
    with background_simulator(faults={"reset_after_create": 1.0}) as sim:
        assert run_cli(manifest, out, sim) == 0
        (count,) = sim.stats.submissions_by_fingerprint.values()
        assert count == 4  # four repeats, four jobs: none twice, none lost
    job_ids = [e["jobId"] for e in ledger_events(out) if e["event"] == "submitted"]
    assert len(set(job_ids)) == 4


@pytest.mark.parametrize(
    "faults",
    [
        {"rate_limit": 0.3},
        {"server_error": 0.3},
        {"conflict": 0.3},
        {"reset_before_create": 0.3},
        {"truncated_download": 0.4},
        {"expired_url": 0.4},
        {"empty_page": 0.5, "error_after_create": 0.5},
    ],
    ids="+".join,
)
def test_transient_faults_are_survived_without_double_submission(
    tmp_path: Path, faults: dict[str, float]
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(8))
    out = tmp_path / "out"
    with background_simulator(seed=7, faults=faults, retry_after_seconds=0.05) as sim:
        assert run_cli(manifest, out, sim) == 0
        assert_each_submitted_once(sim)
        assert sum(sim.stats.faults_injected.values()) > 0, "the fault never fired"
        assert sim.stats.cdn_authorization_headers == []
    assert ledger_events(out)[-1]["event"] == "downloaded"
    files = sorted((out / "videos").iterdir())
    assert len(files) == 8
    assert not [p for p in (out / "videos").iterdir() if p.name.startswith(".")]


def test_slow_responses_past_the_read_timeout_do_not_double_submit(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(4))
    with background_simulator(seed=3, faults={"slow_response": 0.3}, slow_seconds=0.3) as sim:
        assert run_cli(manifest, tmp_path / "out", sim) == 0
        assert_each_submitted_once(sim)


def test_failed_jobs_are_recorded_and_the_run_exits_1(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(4))
    out = tmp_path / "out"
    with background_simulator(faults={"job_failure": 1.0}) as sim:
        assert run_cli(manifest, out, sim) == 1
        assert_each_submitted_once(sim)  # a content-policy failure is never retried blindly
    failed = [e for e in ledger_events(out) if e["event"] == "failed"]
    assert len(failed) == 4
    assert all(e["status"] == "failure" and e["error"] and e["hint"] for e in failed)


def test_an_empty_asset_file_fails_its_job_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    bad = {"id": "bad", "model": "model_kling-v2-1-pro",
           "params": {"prompt": "x", "startImage": "empty.png"}}
    manifest = write_manifest(tmp_path, [bad, *t2v_jobs(2)])
    out = tmp_path / "out"
    with background_simulator() as sim:
        code = run_cli(manifest, out, sim)
    err = capsys.readouterr().err
    if code == 2:  # the manifest check caught it first: also fine, nothing was sent
        assert "empty.png" in err and sim.stats.jobs == []
        return
    assert code == 1 and "Traceback" not in err
    rejected = [e for e in ledger_events(out) if e["event"] == "rejected"]
    assert [e["job"] for e in rejected] == ["bad"] and "empty" in rejected[0]["error"]
    assert len(list((out / "videos").glob("*.mp4"))) == 2


def test_transient_job_failures_get_one_automatic_new_attempt(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(3))
    out = tmp_path / "out"
    with background_simulator(faults={"transient_job_failure": 1.0}) as sim:
        assert run_cli(manifest, out, sim, "--auto-retries", "1") == 1
        assert set(sim.stats.submissions_by_fingerprint.values()) == {2}
    attempts = [e["attempt"] for e in ledger_events(out) if e["event"] == "intent"]
    assert sorted(attempts) == [1, 1, 1, 2, 2, 2]


def test_retry_failed_makes_a_new_attempt_only_for_failed_jobs(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(4))
    out = tmp_path / "out"
    with background_simulator(seed=1, faults={"job_failure": 0.5}) as sim:
        first = run_cli(manifest, out, sim)
        failed = {e["job"] for e in ledger_events(out) if e["event"] == "failed"}
        assert first == 1 and 0 < len(failed) < 4
        sim.set_faults(job_failure=0.0)
        assert run_cli(manifest, out, sim) == 1  # without the flag, failures are left alone
        assert run_cli(manifest, out, sim, "--retry-failed") == 0
        counts = sim.stats.submissions_by_fingerprint
    intents = Counter(e["job"] for e in ledger_events(out) if e["event"] == "intent")
    assert {job for job, n in intents.items() if n == 2} == failed
    assert sorted(counts.values()) == sorted(intents.values())


def test_attempt_numbers_never_repeat_across_reposts_and_retries(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(4))
    out = tmp_path / "out"
    faults = {"transient_job_failure": 1.0, "reset_before_create": 0.5}
    with background_simulator(seed=5, faults=faults) as sim:
        assert run_cli(manifest, out, sim, "--auto-retries", "2") == 1
    intents: dict[str, list[int]] = {}
    for event in ledger_events(out):
        if event["event"] == "intent":
            intents.setdefault(event["job"], []).append(event["attempt"])
    for attempts in intents.values():
        assert attempts == sorted(set(attempts)), attempts  # strictly increasing


def test_resume_skips_done_jobs_and_redownloads_a_missing_file(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(5))
    out = tmp_path / "out"
    with background_simulator() as sim:
        assert run_cli(manifest, out, sim) == 0
        before = dict(sim.stats.submissions_by_fingerprint)
        (out / "videos" / "clip-002.mp4").unlink()
        (out / "videos" / "clip-003.mp4").write_bytes(b"corrupted")
        assert run_cli(manifest, out, sim) == 0
        assert dict(sim.stats.submissions_by_fingerprint) == before
    downloaded = Counter(e["job"] for e in ledger_events(out) if e["event"] == "downloaded")
    assert downloaded == {"clip-000": 1, "clip-001": 1, "clip-002": 2, "clip-003": 2,
                          "clip-004": 1}


def test_resume_reposts_lost_intents_within_the_concurrency_limit(tmp_path: Path) -> None:
    jobs = t2v_jobs(8)
    manifest = write_manifest(tmp_path, jobs)
    out = tmp_path / "out"
    out.mkdir()
    # A crashed run left eight intents whose POSTs never reached the API.
    # (Stamped in the future, as another machine's clock might: the wait stays bounded.)
    lines = [encode_event(Intended(job=j["id"], ts="2030-01-01T00:00:00.000Z", attempt=1,
                                   model=j["model"], params=j["params"], body=j["params"],
                                   fingerprint="f"))
             for j in jobs]
    (out / "ledger.jsonl").write_bytes(b"".join(lines))
    with background_simulator(job_seconds=(0.2, 0.3)) as sim:
        assert run_cli(manifest, out, sim, "--concurrency", "2") == 0
        assert sim.stats.max_jobs_in_flight <= 2
        assert set(sim.stats.submissions_by_fingerprint.values()) == {1}
    attempts = [e["attempt"] for e in ledger_events(out) if e["event"] == "submitted"]
    assert attempts == [2] * 8


def test_changed_jobs_are_refused_then_redone_on_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = t2v_jobs(2)
    out = tmp_path / "out"
    with background_simulator() as sim:
        assert run_cli(write_manifest(tmp_path, jobs), out, sim) == 0
        jobs[1]["params"]["prompt"] = "A different lighthouse"
        manifest = write_manifest(tmp_path, jobs)
        capsys.readouterr()
        assert run_cli(manifest, out, sim) == 2
        err = capsys.readouterr().err
        assert "clip-001: params.prompt" in err and "--redo-changed" in err
        assert sum(sim.stats.submissions_by_fingerprint.values()) == 2
        assert run_cli(manifest, out, sim, "--redo", "clip-001") == 0
        assert sum(sim.stats.submissions_by_fingerprint.values()) == 3


def test_a_replaced_input_image_is_a_changed_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "assets").mkdir()
    image = tmp_path / "assets" / "knight.png"
    image.write_bytes(png_bytes(64, 48, 90))
    jobs = [{"id": "knight", "model": "model_kling-v2-1-pro",
             "params": {"prompt": "A knight", "startImage": "assets/knight.png"}},
            *t2v_jobs(1)]
    manifest = write_manifest(tmp_path, jobs)
    out = tmp_path / "out"
    with background_simulator() as sim:
        assert run_cli(manifest, out, sim) == 0
        [row] = [m for m in metadata(out) if m["job"] == "knight"]
        [used] = row["inputs"]
        assert used["field"] == "params.startImage" and used["path"] == "assets/knight.png"
        assert used["sha256"] == sha256_of(image) and used["assetId"].startswith("asset_")
        image.write_bytes(png_bytes(64, 48, 200))  # another picture under the same name
        capsys.readouterr()
        assert run_cli(manifest, out, sim) == 2
        err = capsys.readouterr().err
        assert "knight: params.startImage (new content of assets/knight.png)" in err
        assert sum(sim.stats.submissions_by_fingerprint.values()) == 2
        assert run_cli(manifest, out, sim, "--redo-changed") == 0
        assert sum(sim.stats.submissions_by_fingerprint.values()) == 3
    [row] = [m for m in metadata(out) if m["job"] == "knight"]
    assert row["inputs"][0]["sha256"] == sha256_of(image) != used["sha256"]
    assert row["inputs"][0]["assetId"] != used["assetId"]


def metadata(out: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (out / "metadata.jsonl").read_text().splitlines()]


def test_credit_exhaustion_halts_with_exit_3_and_resumes(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(6))
    out = tmp_path / "out"
    with background_simulator(credit_limit=2) as sim:
        assert run_cli(manifest, out, sim, "--concurrency", "1") == 3
        assert sum(sim.stats.submissions_by_fingerprint.values()) == 2
        posts = sim.stats.requests_by_endpoint["POST /v1/generate/custom/{modelId}"]
        assert posts == 3  # two jobs, one refused POST, then the run stopped submitting
    events = ledger_events(out)
    assert not [e for e in events if e["event"] in ("failed", "rejected")]


def test_bad_credentials_halt_with_exit_3(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(5))
    with background_simulator(api_key="right", api_secret="right") as sim:
        assert run_cli(manifest, tmp_path / "out", sim) == 3
        assert sim.stats.submissions_by_fingerprint == Counter()
        assert sim.stats.requests_by_endpoint["POST /v1/generate/custom/{modelId}"] <= 8


def test_wrong_credentials_with_a_budget_halt_with_exit_3(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(3))
    with background_simulator(api_key="right", api_secret="right") as sim:
        assert run_cli(manifest, tmp_path / "out", sim, "--budget", "1000") == 3
        assert sim.stats.jobs == []


def test_max_failures_halts_the_run(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(12))
    with background_simulator(faults={"job_failure": 1.0}) as sim:
        code = run_cli(manifest, tmp_path / "out", sim, "--concurrency", "2",
                       "--max-failures", "3")
        assert code == 3
        assert sum(sim.stats.submissions_by_fingerprint.values()) < 12


def test_max_failures_counts_over_the_folder_not_one_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A "rerun until exit 0" loop used to get a fresh allowance each time (9 -> 25 -> 35
    # failures under --max-failures 5): the count is the folder's, as the budget's is.
    manifest = write_manifest(tmp_path, t2v_jobs(20))
    out = tmp_path / "out"
    limit = ["--concurrency", "2", "--max-failures", "5"]
    with background_simulator(faults={"job_failure": 1.0}) as sim:
        assert run_cli(manifest, out, sim, *limit) == 3
        first = sum(sim.stats.submissions_by_fingerprint.values())
        assert 5 <= first < 20
        capsys.readouterr()
        for _ in range(3):
            assert run_cli(manifest, out, sim, *limit) == 3
        assert sum(sim.stats.submissions_by_fingerprint.values()) == first
    err = capsys.readouterr().err
    assert (f"{first} of 20 jobs have failed in this folder, 0 of them in this run; "
            "the limit is 5") in err


def test_budget_stops_submitting_before_it_is_passed(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(6))
    out = tmp_path / "out"
    with background_simulator() as sim:
        code = run_cli(manifest, out, sim, "--concurrency", "1", "--budget", "1")
        assert code == 3
        assert sim.stats.submissions_by_fingerprint == Counter()
        assert run_cli(manifest, out, sim, "--concurrency", "1", "--budget", "100000") == 0
        charged_one = sim.stats.creative_units_charged / 6
    budget = charged_one * 2.5
    out2 = tmp_path / "out2"
    with background_simulator() as sim:
        # The same manifest again, into a second folder on purpose: --new-batch says so.
        assert run_cli(manifest, out2, sim, "--concurrency", "1", "--budget", str(budget),
                       "--new-batch") == 3
        assert sum(sim.stats.submissions_by_fingerprint.values()) == 2
        assert sim.stats.creative_units_charged <= budget
    costs = [e["cost"] for e in ledger_events(out2) if e["event"] == "submitted"]
    assert len(costs) == 2 and all(c > 0 for c in costs)


def test_without_credentials_run_stops_before_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SCENARIO_SDK_API_KEY")
    monkeypatch.delenv("SCENARIO_SDK_API_SECRET")
    manifest = write_manifest(tmp_path, t2v_jobs(1))
    with background_simulator() as sim:
        assert run_cli(manifest, tmp_path / "out", sim) == 2
        assert sum(sim.stats.requests_by_endpoint.values()) == 0
    err = capsys.readouterr().err
    assert "SCENARIO_SDK_API_KEY" in err and "--simulate" in err
    assert "Traceback" not in err


def test_job_ids_whose_videos_would_share_names_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = t2v_jobs(2)
    jobs[0]["id"], jobs[1]["id"] = "x", "x_2"
    manifest = write_manifest(tmp_path, jobs)
    with background_simulator() as sim:
        assert run_cli(manifest, tmp_path / "out", sim) == 2
        assert sum(sim.stats.requests_by_endpoint.values()) == 0
    assert "x_2" in capsys.readouterr().err


def test_simulate_runs_without_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SCENARIO_SDK_API_KEY")
    manifest = write_manifest(tmp_path, t2v_jobs(2))
    out = tmp_path / "out"
    assert main(["run", str(manifest), "-o", str(out), "--simulate", "-q"]) == 0
    assert len(list((out / "videos").glob("*.mp4"))) == 2


def test_a_second_runner_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    from runner.outdir import hold_lock

    manifest = write_manifest(tmp_path, t2v_jobs(1))
    out = tmp_path / "out"
    out.mkdir()
    with background_simulator() as sim, hold_lock(out):
        assert run_cli(manifest, out, sim) == 2
        assert sum(sim.stats.requests_by_endpoint.values()) == 0


def test_each_poll_mode_follows_every_job_with_its_own_gets(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(6))
    with background_simulator() as sim:
        assert run_cli(manifest, tmp_path / "out", sim, "--poll-mode", "each") == 0
        requests = sim.stats.requests_by_endpoint
        assert_each_submitted_once(sim)
    assert requests["GET /v1/jobs"] == 0
    assert requests["GET /v1/jobs/{jobId}"] >= 6


def test_list_poll_mode_follows_every_job_with_listings(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(10))
    with background_simulator() as sim:
        assert run_cli(manifest, tmp_path / "out", sim, "--poll-mode", "list") == 0
        requests = sim.stats.requests_by_endpoint
        assert_each_submitted_once(sim)
    assert requests["GET /v1/jobs"] >= 1
    # One direct look per job at most (before its first listing), the rest by listing.
    assert requests["GET /v1/jobs/{jobId}"] <= 10


def test_a_job_with_several_assets_gets_numbered_files_and_a_metadata_line_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(2))
    out = tmp_path / "out"
    with background_simulator(assets_per_job=(2, 2)) as sim:
        assert run_cli(manifest, out, sim) == 0
    names = sorted(p.name for p in (out / "videos").iterdir())
    assert names == ["clip-000_1.mp4", "clip-000_2.mp4", "clip-001_1.mp4", "clip-001_2.mp4"]
    meta = [json.loads(x) for x in (out / "metadata.jsonl").read_text().splitlines()]
    assert sorted(m["file_name"] for m in meta) == [f"videos/{n}" for n in names]
    rows = status_json(out, capsys)
    assert all(len(r["assets"]) == 2 for r in rows)
    for m in meta:
        assert sha256_of(out / m["file_name"]) == m["sha256"]


def test_resume_tolerates_a_torn_last_ledger_line(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(3))
    out = tmp_path / "out"
    with background_simulator() as sim:
        assert run_cli(manifest, out, sim) == 0
        before = dict(sim.stats.submissions_by_fingerprint)
        with (out / "ledger.jsonl").open("ab") as ledger:
            ledger.write(b'{"ts":"2030-01-01T00:00:00.000Z","job":"clip-000","eve')  # crash
        (out / "videos" / "clip-001.mp4").unlink()
        assert run_cli(manifest, out, sim) == 0
        assert dict(sim.stats.submissions_by_fingerprint) == before
    lines = (out / "ledger.jsonl").read_bytes().splitlines()
    torn = [line for line in lines if line.endswith(b'"eve')]
    assert len(torn) == 1  # kept as it was, on its own line
    events = list(JsonlLedger(out).read_events())  # the reader resume uses
    assert isinstance(events[-1], Downloaded) and events[-1].job == "clip-001"
