"""What `run` shows and asks: the live display on a real pseudo-terminal (cost, budget
left, a rate and ETA from learned durations, the line after a second Ctrl-C), the question
before a costly run (asked on a terminal only; no submits nothing), and the closing lines
(retried failures named apart from failed jobs, succeeded jobs whose files are missing).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runner.batch.progress import forecast
from runner.cli import main
from runner.polling import Durations
from tests.helpers.runs import (
    FAST_RUN,
    background_simulator,
    ledger_events,
    run_cli,
    t2v_jobs,
    wait_for_events,
    write_manifest,
)
from tests.helpers.terminal import Terminal

pytestmark = pytest.mark.usefixtures("api_credentials")

# FAST_RUN without -q: these tests look at the display.
BRISK = [a for a in FAST_RUN if a != "-q"]


def run_argv(manifest: Path, out: Path, base_url: str, *extra: str) -> list[str]:
    return ["run", str(manifest), "-o", str(out), "--base-url", base_url, *BRISK, *extra]


# --- the live display ----------------------------------------------------------------------


def test_the_terminal_display_shows_cost_budget_left_and_a_learned_eta(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(12))
    out = tmp_path / "out"
    with background_simulator(job_seconds=(0.8, 1.2)) as sim:
        term = Terminal.start(run_argv(manifest, out, sim.base_url, "--concurrency", "3",
                                       "--budget", "100000", "--yes"))
        assert term.finish() == 0
    text = term.text()
    assert "Submit them?" not in text  # --yes: never asked
    # Each job is 300 CU (60 CU/s, 5 s): the table says what was spent and what is left.
    spent = [int(n) for n in re.findall(r"(\d+) CU spent, \d+ CU left of 100000", text)]
    assert spent and max(spent) == 3600
    assert "96400 CU left of 100000" in text
    # In the live table's caption (its own lines), not only in the closing plain line.
    live = re.findall(r"^\s*\d+ CU spent, \d+ CU left of 100000", text, re.M)
    assert live, text[-2000:]
    # Once a job has finished, its class's duration gives a rate and an ETA in seconds
    # while jobs remain (not the "0.0/min · ETA 0s" of the end).
    assert re.search(r"(?:[1-9]\d*\.\d|0\.[1-9])/min · ETA [1-9]\d*s", text), text[-2000:]


def test_after_a_second_ctrl_c_the_last_line_no_longer_offers_it(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(3))
    out = tmp_path / "out"
    with background_simulator(job_seconds=(60.0, 60.0)) as sim:
        term = Terminal.start(run_argv(manifest, out, sim.base_url, "--yes"))
        wait_for_events(out, "submitted", 3)
        term.interrupt()
        term.wait_for("draining")
        term.interrupt()
        assert term.finish() == 130
    text = term.text()
    after = text[text.index("stopping now"):]
    assert "STOPPED" in after and "Ctrl-C again" not in after


def test_a_long_job_id_never_wraps_mid_word_on_the_terminal(tmp_path: Path) -> None:
    job = "shot-of-a-lighthouse-at-dusk-from-the-north-cliff-take-0001"
    manifest = write_manifest(tmp_path, [{**t2v_jobs(1)[0], "id": job}])
    out = tmp_path / "out"
    # Jobs long enough for the note (a transient failure) to reach the live display.
    with background_simulator(faults={"transient_job_failure": 1.0},
                              job_seconds=(1.5, 2.0)) as sim:
        term = Terminal.start(run_argv(manifest, out, sim.base_url, "--yes"), columns=40)
        assert term.finish() == 1
    lines = term.text().splitlines()
    # Too long for a 40-column line: the live display cuts the id with an ellipsis ...
    assert any(x.startswith("shot-of-a-lighthouse") and x.rstrip().endswith("…")
               for x in lines), term.text()[-2000:]
    # ... and no line carries the rest of a folded id.
    assert not [x for x in lines if "take-0001" in x and job not in x]


# --- the question before a costly run --------------------------------------------------------


def test_on_a_terminal_a_run_above_the_threshold_asks_and_no_submits_nothing(
    tmp_path: Path,
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(3))
    out = tmp_path / "out"
    with background_simulator() as sim:
        term = Terminal.start(run_argv(manifest, out, sim.base_url, "--confirm-above", "500"))
        question = term.wait_for(r"estimated (\d+) CU.*Submit them\? \[y/N\]")
        assert question.group(1) == "900"  # the dry-run prices: 3 jobs x 300 CU
        term.send("n\n")
        assert term.finish() == 2
        assert sim.stats.submissions_by_fingerprint == {}
        assert sim.stats.generate_attempts_by_fingerprint == {}
    assert "nothing was submitted" in term.text()
    ledger = out / "ledger.jsonl"
    assert not ledger.exists() or not any(e["event"] == "intent" for e in ledger_events(out))


def test_on_a_terminal_yes_runs_the_batch(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(4))  # 1200 CU: above the default 1000
    out = tmp_path / "out"
    with background_simulator() as sim:
        term = Terminal.start(run_argv(manifest, out, sim.base_url))
        term.wait_for(r"estimated 1200 CU.*Submit them\? \[y/N\]")
        term.send("y\n")
        assert term.finish() == 0
        assert sorted(sim.stats.submissions_by_fingerprint.values()) == [1, 1, 1, 1]


def test_a_run_below_the_threshold_is_not_asked(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(3))
    out = tmp_path / "out"
    with background_simulator() as sim:
        term = Terminal.start(run_argv(manifest, out, sim.base_url))  # 900 CU <= 1000
        assert term.finish() == 0
        assert len(sim.stats.submissions_by_fingerprint) == 3
    assert "Submit them?" not in term.text()


def test_without_a_terminal_it_never_asks_nor_prices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(3))
    with background_simulator() as sim:
        assert run_cli(manifest, tmp_path / "out", sim, "--confirm-above", "1") == 0
        assert sim.stats.dry_runs == 0
    assert "Submit them?" not in capsys.readouterr().err


def test_confirm_above_is_checked_as_a_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(1), settings={"confirmAbove": -5})
    assert main(["run", str(manifest), "-o", str(tmp_path / "out"), "--simulate"]) == 2
    assert "settings.confirmAbove" in capsys.readouterr().err


# --- the closing lines ---------------------------------------------------------------------


def test_failures_retried_automatically_are_named_apart_from_failed_jobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(3))
    with background_simulator(faults={"transient_job_failure": 1.0}) as sim:
        assert run_cli(manifest, tmp_path / "out", sim, "--auto-retries", "1") == 1
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if "pending" in x and "|" in x)
    assert "failed 3" in line and "3 failure(s) retried automatically" in line
    assert "failures 6" not in line


def test_the_summary_says_when_succeeded_jobs_lack_their_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(2))
    with background_simulator(faults={"truncated_download": 1.0}) as sim:
        assert run_cli(manifest, tmp_path / "out", sim) == 1
    summary = capsys.readouterr().out
    assert re.search(r"2 succeeded — 0 file\(s\) in \S+: 2 download\(s\) failed — run again "
                     "to fetch them", summary), summary


# --- the forecast --------------------------------------------------------------------------


def learned(seconds: float, cls: object = ("m", "5")) -> Durations:
    durations = Durations()
    for _ in range(5):
        durations.add(cls, seconds)
    return durations


def test_the_eta_spreads_the_work_over_the_places() -> None:
    rate, eta = forecast(learned(10.0), {("m", "5"): 16}, [], places=8, settle=30.0)
    assert eta == pytest.approx(20.0) and rate == pytest.approx(8 / 10)


def test_a_job_in_flight_needs_what_its_class_takes_minus_its_age() -> None:
    _, eta = forecast(learned(10.0), {}, [(("m", "5"), 4.0, False)], places=8, settle=30.0)
    assert eta == pytest.approx(6.0)


def test_a_lost_post_waits_out_the_settle_window_then_runs() -> None:
    _, eta = forecast(learned(10.0), {}, [(("m", "5"), 5.0, True)], places=8, settle=30.0)
    assert eta == pytest.approx(25.0 + 10.0)


def test_nothing_learned_is_unknown_not_a_guess() -> None:
    assert forecast(Durations(), {("m", "5"): 3}, [], places=8, settle=30.0) == (None, None)
    assert forecast(Durations(), {}, [], places=8, settle=30.0) == (None, 0.0)


def test_a_class_never_seen_takes_the_median_of_those_seen() -> None:
    _, eta = forecast(learned(10.0), {("other", None): 8}, [], places=8, settle=30.0)
    assert eta == pytest.approx(10.0)
