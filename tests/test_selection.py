"""`run`/`plan` with `--limit`, `--only`, `--model`: a pilot, a selection, and the rest left
for a later plain `run` of the same batch — through the CLI, against the simulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.cli import main
from tests.helpers.runs import (
    ALL_MODELS,
    background_simulator,
    ledger_events,
    make_assets,
    run_cli,
    status_json,
    t2v_jobs,
    write_manifest,
)

pytestmark = pytest.mark.usefixtures("api_credentials")


def _mixed_manifest(folder: Path) -> Path:
    """12 t2v jobs first, then one job of each of the other four models."""
    make_assets(folder / "assets")
    return write_manifest(folder, t2v_jobs(12) + [j for j in ALL_MODELS if j["id"] != "city"])


def _plan_ids(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    capsys.readouterr()
    assert main(["plan", *args, "--json"]) == 0
    return [job["id"] for job in json.loads(capsys.readouterr().out)["jobs"]]


def test_a_pilot_spreads_over_the_models_and_is_the_same_every_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _mixed_manifest(tmp_path)
    ids = _plan_ids(capsys, str(manifest), "--limit", "5")
    # Round-robin over the models in manifest order: one job of each, not the first five.
    assert ids == ["clip-000", "knight", "dance26", "o1ref", "dance3"]
    assert _plan_ids(capsys, str(manifest), "--limit", "5") == ids
    assert _plan_ids(capsys, str(manifest), "--limit", "7") == [
        "clip-000", "clip-001", "clip-002", "knight", "dance26", "o1ref", "dance3"]
    assert _plan_ids(capsys, str(manifest), "--model", "model_kling-v3-t2v-4k",
                     "--limit", "2") == ["clip-000", "clip-001"]
    assert _plan_ids(capsys, str(manifest), "--only", "clip-00[12]", "--only", "o1ref") == [
        "clip-001", "clip-002", "o1ref"]
    capsys.readouterr()
    assert main(["plan", str(manifest), "--limit", "3"]) == 0
    assert "selected: 3 of 16 jobs (--limit 3)" in capsys.readouterr().out


def test_a_pilot_spreads_over_templates_and_takes_repeats_last(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.txt").write_text("one\ntwo\nthree\n")
    (tmp_path / "b.txt").write_text("red\ngreen\n")
    template = {"model": "model_kling-v3-t2v-4k", "params": {"duration": "5"}}
    manifest = write_manifest(tmp_path, [
        {**template, "id": "a", "promptsFile": "a.txt", "repeat": 2},
        {**template, "id": "b", "promptsFile": "b.txt"},
    ])
    everything = _plan_ids(capsys, str(manifest))
    assert len(everything) == 8
    ids = _plan_ids(capsys, str(manifest), "--limit", "4")
    assert len(ids) == 4
    assert not any("-r" in i for i in ids), ids  # no repeat before every row's first copy
    assert sum(i.startswith("b-") for i in ids) == 2  # both templates, alternately


@pytest.mark.parametrize(("flags", "wanted"), [
    (["--only", "clip-1*"], "--only 'clip-1*' matches no job id — did you mean"),
    (["--only", "clip-0033"], "did you mean 'clip-003'?"),
    (["--model", "model_kling-v2-1-pr"], "did you mean 'model_kling-v2-1-pro'?"),
    (["--model", "model_kling-v2-1-pro"], "no job of the manifest uses it"),
    (["--limit", "0"], "--limit 0 is not valid"),
])
@pytest.mark.parametrize("command", ["plan", "run"])
def test_a_selection_naming_nothing_is_exit_2_and_sends_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], wanted: str,
    command: str,
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(6))
    capsys.readouterr()
    with background_simulator() as sim:
        if command == "plan":
            code = main(["plan", str(manifest), *flags])
        else:
            code = run_cli(manifest, tmp_path / "out", sim, *flags)
        assert sum(sim.stats.submissions_by_fingerprint.values()) == 0
    assert code == 2
    err = capsys.readouterr().err
    assert wanted in err and "Traceback" not in err


def test_a_pilot_then_a_plain_run_finishes_the_batch_each_job_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(10))
    out = tmp_path / "out"
    with background_simulator() as sim:
        capsys.readouterr()
        assert run_cli(manifest, out, sim, "--limit", "3") == 0
        text = capsys.readouterr().out
        assert sum(sim.stats.submissions_by_fingerprint.values()) == 3
        assert "3 of 10 jobs selected (--limit 3); 7 left out, 7 of them pending" in text
        assert "run again without --limit to continue" in text
        assert "3 succeeded" in text and "pending" not in text.split("\n")[0]
        # The jobs left out have no line in the ledger at all.
        assert {e["job"] for e in ledger_events(out)} == {"clip-000", "clip-001", "clip-002"}
        rows = {r["id"]: r["state"] for r in status_json(out, capsys, code=4)}
        assert sorted(rows.values()) == ["pending"] * 7 + ["succeeded"] * 3
        # The same pilot again: done, nothing sent.
        assert run_cli(manifest, out, sim, "--limit", "3") == 0
        assert sum(sim.stats.submissions_by_fingerprint.values()) == 3
        # A plain run continues the same batch in the same folder.
        assert run_cli(manifest, out, sim) == 0
        counts = sim.stats.submissions_by_fingerprint
        assert sum(counts.values()) == 10 and max(counts.values()) == 1
    assert {r["state"] for r in status_json(out, capsys)} == {"succeeded"}


def test_a_selected_run_answers_for_its_own_jobs_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(4))
    out = tmp_path / "out"
    with background_simulator(faults={"job_failure": 1.0}) as sim:
        # The three jobs left out have no files, yet the selection all succeeded... here
        # it failed: exit 1 for its own failure.
        assert run_cli(manifest, out, sim, "--only", "clip-000", "--auto-retries", "0") == 1
        assert sum(sim.stats.submissions_by_fingerprint.values()) == 1
    out2 = tmp_path / "out2"
    with background_simulator() as sim:
        # Every selected job succeeded with its file: 0, though three jobs stay pending.
        assert run_cli(manifest, out2, sim, "--only", "clip-00[01]") == 0
        assert sum(sim.stats.submissions_by_fingerprint.values()) == 2
        assert run_cli(manifest, out2, sim, "--only", "clip-002", "--only", "clip-000") == 0
        assert sum(sim.stats.submissions_by_fingerprint.values()) == 3  # clip-000: done
