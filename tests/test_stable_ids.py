"""Expanded ids are stable under insertion and deletion of prompts, and a redo never
overwrites the paid video it replaces (issue 12, item 7).

The row mapping is a table test of `row_numbers`; the rest runs `kling-batch run` against
the simulator and reads what the folder holds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runner.batch.numbering import row_numbers
from runner.cli import main
from tests.helpers.media import png_bytes
from tests.helpers.runs import (
    background_simulator,
    ledger_events,
    run_cli,
    sha256_of,
    status_json,
    t2v_jobs,
    write_manifest,
)

pytestmark = pytest.mark.usefixtures("api_credentials")


def k(text: str) -> tuple[str, str]:
    return ("m", text)


@pytest.mark.parametrize(
    ("rows", "paid", "expected"),
    [
        # nothing paid yet, or nothing moved: positions
        ({1: k("a"), 2: k("b")}, {}, {1: 1, 2: 2}),
        ({1: k("a"), 2: k("b")}, {1: k("a"), 2: k("b")}, {1: 1, 2: 2}),
        # line 2 (b) deleted: c keeps 3, d keeps 4
        ({1: k("a"), 2: k("c"), 3: k("d")}, {1: k("a"), 2: k("b"), 3: k("c"), 4: k("d")},
         {1: 1, 2: 3, 3: 4}),
        # a line inserted at the top: the old rows keep theirs, the new one gets a fresh one
        ({1: k("new"), 2: k("a"), 3: k("b")}, {1: k("a"), 2: k("b")}, {1: 3, 2: 1, 3: 2}),
        ({1: k("a"), 2: k("new"), 3: k("b")}, {1: k("a"), 2: k("b")}, {1: 1, 2: 3, 3: 2}),
        # a line edited in place stays a changed job at its number (refused as before)
        ({1: k("a"), 2: k("B!")}, {1: k("a"), 2: k("b")}, {1: 1, 2: 2}),
        # identical rows match one paid job each
        ({1: k("a"), 2: k("a"), 3: k("a")}, {2: k("a"), 3: k("a")}, {1: 1, 2: 2, 3: 3}),
        ({1: k("a"), 2: k("a")}, {1: k("a"), 2: k("a"), 3: k("a")}, {1: 1, 2: 2}),
        # a fresh number is the lowest no job has or had: paid ones stay reserved
        ({1: k("new"), 2: k("a")}, {1: k("a"), 5: k("z")}, {1: 2, 2: 1}),
    ],
)
def test_row_numbers(
    rows: dict[int, tuple[str, str]], paid: dict[int, tuple[str, str]],
    expected: dict[int, int],
) -> None:
    assert row_numbers(rows, paid) == expected


def test_a_fresh_number_skips_occupied_ids() -> None:
    assert row_numbers({1: k("new"), 2: k("a")}, {1: k("a")}, frozenset({2, 3})) == {1: 4, 2: 1}
    # a kept position and a fresh number never collide, whatever the order of the rows
    assert row_numbers({1: k("x"), 2: k("a"), 3: k("y")}, {1: k("a")}) == {1: 2, 2: 1, 3: 3}


TEMPLATE = {"id": "shot", "model": "model_kling-v3-t2v-4k", "promptsFile": "prompts.txt",
            "params": {"duration": "5"}}


def prompts(folder: Path, *lines: str) -> None:
    (folder / "prompts.txt").write_text("\n".join(lines) + "\n")


def by_prompt(out: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    return {r["id"]: str(r["jobId"]) for r in status_json(out, capsys) if r["jobId"]}


def prompt_of(out: Path) -> dict[str, str]:
    intents = [e for e in ledger_events(out) if e["event"] == "intent"]
    return {e["job"]: e["params"]["prompt"] for e in intents}


@pytest.mark.parametrize(
    ("before", "after", "new_prompts"),
    [
        (["A", "B", "C", "D"], ["A", "C", "D"], []),  # a line deleted
        (["A", "B", "C"], ["Z", "A", "B", "C"], ["Z"]),  # a line inserted before the others
        (["A", "B", "C"], ["A", "B", "X", "C"], ["X"]),  # a line inserted in the middle
    ],
    ids=["deleted", "inserted-first", "inserted-middle"],
)
def test_prompts_file_edits_do_not_pay_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], before: list[str], after: list[str],
    new_prompts: list[str],
) -> None:
    manifest = write_manifest(tmp_path, [TEMPLATE])
    out = tmp_path / "out"
    prompts(tmp_path, *before)
    with background_simulator() as sim:
        assert run_cli(manifest, out, sim) == 0
        paid = prompt_of(out)
        prompts(tmp_path, *after)
        capsys.readouterr()
        assert run_cli(manifest, out, sim) == 0, capsys.readouterr().err
        assert "keep the ids they were paid under" in capsys.readouterr().err
        created = sum(sim.stats.submissions_by_fingerprint.values())
        assert created == len(before) + len(new_prompts)  # only the new lines were paid for
        assert max(sim.stats.submissions_by_fingerprint.values()) == 1
    now = prompt_of(out)
    assert {job: now[job] for job in paid} == paid  # every paid id still means its prompt
    assert sorted(now.values()) == sorted(set(before) | set(after))
    views = {r["id"]: r for r in status_json(out, capsys)}
    assert {views[j]["state"] for j in paid if paid[j] in after} == {"succeeded"}
    gone = [j for j in paid if paid[j] not in after]
    assert all(views[j]["next"] == "no longer in the manifest: left alone" for j in gone)
    meta = [json.loads(x) for x in (out / "metadata.jsonl").read_text().splitlines()]
    assert len({m["file_name"] for m in meta}) == len(meta)  # never a file twice
    assert {m["job"] for m in meta if not m["inManifest"]} == set(gone)


def test_a_redo_keeps_the_video_it_replaces(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs: list[dict[str, Any]] = t2v_jobs(2)
    manifest = write_manifest(tmp_path, jobs)
    out = tmp_path / "out"
    with background_simulator() as sim:
        assert run_cli(manifest, out, sim) == 0
        first = out / "videos" / "clip-001.mp4"
        first_sha = sha256_of(first)
        jobs[1]["params"]["prompt"] = "A different lighthouse"
        manifest = write_manifest(tmp_path, jobs)
        capsys.readouterr()
        assert run_cli(manifest, out, sim, "--redo-changed") == 0
        assert "kept at superseded/clip-001/attempt-1/clip-001.mp4" in capsys.readouterr().err
    kept = out / "superseded" / "clip-001" / "attempt-1" / "clip-001.mp4"
    assert sha256_of(kept) == first_sha != sha256_of(first)
    [event] = [e for e in ledger_events(out) if e["event"] == "superseded"]
    assert event["path"] == "superseded/clip-001/attempt-1/clip-001.mp4"
    assert event["previous"] == "videos/clip-001.mp4" and event["sha256"] == first_sha
    meta = [json.loads(x) for x in (out / "metadata.jsonl").read_text().splitlines()]
    assert sorted(m["file_name"] for m in meta) == ["videos/clip-000.mp4",
                                                   "videos/clip-001.mp4"]
    [row] = [m for m in meta if m["job"] == "clip-001"]
    assert row["sha256"] == sha256_of(first) and row["prompt"] == "A different lighthouse"


def test_a_move_recorded_by_a_killed_run_is_finished_by_the_next(tmp_path: Path) -> None:
    image = tmp_path / "knight.png"
    image.write_bytes(png_bytes())
    jobs = t2v_jobs(1)
    manifest = write_manifest(tmp_path, jobs)
    out = tmp_path / "out"
    with background_simulator() as sim:
        assert run_cli(manifest, out, sim) == 0
        video = out / "videos" / "clip-000.mp4"
        sha, size = sha256_of(video), video.stat().st_size
        # A run wrote the superseded line, then died before the rename.
        line = {"ts": "2030-01-01T00:00:00.000Z", "job": "clip-000", "event": "superseded",
                "assetId": "asset_x", "path": "superseded/clip-000/attempt-1/clip-000.mp4",
                "previous": "videos/clip-000.mp4", "sha256": sha, "bytes": size,
                "attempt": 1}
        with (out / "ledger.jsonl").open("a") as ledger:
            ledger.write(json.dumps(line) + "\n")
        assert run_cli(manifest, out, sim) == 0  # downloads the job's video again
        assert sum(sim.stats.submissions_by_fingerprint.values()) == 1
    assert sha256_of(out / "superseded" / "clip-000" / "attempt-1" / "clip-000.mp4") == sha
    assert (out / "videos" / "clip-000.mp4").exists()


def test_status_of_a_folder_shows_the_ids_it_uses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, [TEMPLATE])
    out = tmp_path / "out"
    prompts(tmp_path, "A", "B", "C")
    with background_simulator() as sim:
        assert run_cli(manifest, out, sim) == 0
        prompts(tmp_path, "A", "C")
        assert run_cli(manifest, out, sim) == 0
    capsys.readouterr()
    assert main(["status", str(out)]) == 0
    text = capsys.readouterr().out
    assert "shot-0003" in text and "shot-0002" in text
