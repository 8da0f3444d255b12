"""A full disk, a file size limit, a read-only folder: one line each, never a traceback, and
nothing paid lost (issue 12, item 8).

The faults are real: a tmpfs of a few hundred KiB mounted for the test (root only), the
process's own file size limit (RLIMIT_FSIZE, anyone), a tmpfs remounted read-only (root) or
a folder without write permission (anyone but root). What a machine cannot provoke is
skipped, never faked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runner.cli import main
from runner.simulator import Simulator
from tests.helpers.runs import (
    FAST_RUN,
    REPO,
    background_simulator,
    ledger_events,
    run_cli,
    t2v_jobs,
    write_manifest,
)

pytestmark = pytest.mark.usefixtures("api_credentials")

VIDEO_PAD = 120_000  # bytes added to each simulated video: a few fill a small disk


def _mount(where: Path, options: str) -> bool:
    if os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          capture_output=True, check=False)
    return done.returncode == 0


def _remount(where: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(where)], check=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 600 KiB file system (tmpfs), unmounted after the test."""
    where = tmp_path / "disk"
    where.mkdir()
    if not _mount(where, "size=600k"):
        pytest.skip("mounting a small tmpfs needs root")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def freezable(tmp_path: Path) -> Iterator[tuple[Path, Callable[[], None]]]:
    """A writable folder and a function that makes it read-only for real."""
    where = tmp_path / "frozen"
    where.mkdir()
    if _mount(where, "size=8m"):
        try:
            yield where, lambda: _remount(where, "ro")
        finally:
            subprocess.run(["umount", "-l", str(where)], check=False)
        return
    if os.geteuid() == 0:
        pytest.skip("root ignores permissions and cannot mount here")
    frozen: list[tuple[Path, int]] = []

    def freeze() -> None:
        for path in [where, *where.rglob("*")]:
            frozen.append((path, path.stat().st_mode))
            path.chmod(0o555 if path.is_dir() else 0o444)

    try:
        yield where, freeze
    finally:
        for path, mode in reversed(frozen):
            path.chmod(mode)


def parts_left(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if ".part-" in p.name or ".tmp-" in p.name]


def assert_every_job_at_the_api_is_in_the_ledger(out: Path, sim: Simulator) -> None:
    # Write the ledger first, the video later: a job the API made has its jobId recorded.
    recorded = {e["jobId"] for e in ledger_events(out) if e["event"] == "submitted"}
    assert {j.job_id for j in sim.stats.jobs} <= recorded


def test_a_full_disk_halts_resumably_in_one_line(
    small_disk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(12))
    out = small_disk / "out"
    with background_simulator(video_pad_bytes=VIDEO_PAD) as sim:
        code = run_cli(manifest, out, sim, "--concurrency", "4")
        err = capsys.readouterr().err
        assert code == 3, err
        assert "Traceback" not in err and "Errno" not in err
        halts = [line for line in err.splitlines() if "halting:" in line]
        assert len(halts) == 1, err
        assert f"no space left on the disk holding {out}" in halts[0]
        assert "free; the file being written needs" in halts[0]
        assert parts_left(out) == []
        assert_every_job_at_the_api_is_in_the_ledger(out, sim)
        created = len(sim.stats.jobs)
        assert created < 12  # it stopped submitting
        # A killed run's partial download is removed at the next start.
        stale = out / "videos" / ".clip-000.mp4.part-0123456789ab"
        _remount(small_disk, "size=64m")
        stale.write_bytes(b"partial")
        assert run_cli(manifest, out, sim) == 0
        assert "removed 1 partial file(s)" in capsys.readouterr().err
        assert set(sim.stats.submissions_by_fingerprint.values()) == {1}
        assert len(sim.stats.submissions_by_fingerprint) == 12
    assert not stale.exists() and parts_left(out) == []
    assert len(list((out / "videos").glob("*.mp4"))) == 12


def test_a_ledger_that_cannot_be_written_stops_the_run_in_one_line(
    small_disk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No video is downloaded (the jobs outlast --job-timeout): what fills the disk is the
    # ledger itself.
    _remount(small_disk, "size=32k")
    manifest = write_manifest(tmp_path, t2v_jobs(100))
    out = small_disk / "out"
    follow = ["--concurrency", "20", "--job-timeout", "0.5"]
    with background_simulator(job_seconds=(60.0, 60.0)) as sim:
        assert run_cli(manifest, out, sim, *follow) == 3
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert f"the ledger could not be written (no space left on the disk holding {out}" in err
        assert len(sim.stats.jobs) < 100
        _remount(small_disk, "size=64m")
        # Whatever the ledger missed is reconciled: every job once, none lost.
        assert run_cli(manifest, out, sim, *follow) == 1  # all submitted, still running
        assert set(sim.stats.submissions_by_fingerprint.values()) == {1}
        assert len(sim.stats.submissions_by_fingerprint) == 100


def run_limited(manifest: Path, out: Path, sim: Simulator, limit: int) -> tuple[int, str]:
    """`kling-batch run` in a process whose files may not grow past `limit` bytes (a real
    RLIMIT_FSIZE: every write past it fails with EFBIG; Python ignores SIGXFSZ)."""
    boot = ("import resource, runpy, sys; "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
            "sys.argv = ['kling-batch', *sys.argv[1:]]; "
            "runpy.run_module('runner', run_name='__main__')")
    env = {**os.environ, "SCENARIO_SDK_API_KEY": "test-key",
           "SCENARIO_SDK_API_SECRET": "test-secret", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", boot, "run", str(manifest), "-o", str(out), "--base-url",
         sim.base_url, *FAST_RUN], env=env, capture_output=True, text=True, timeout=120,
        check=False)
    return done.returncode, done.stderr


def test_a_file_size_limit_halts_resumably_in_one_line(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(6))
    out = tmp_path / "out"
    with background_simulator(video_pad_bytes=VIDEO_PAD) as sim:
        code, err = run_limited(manifest, out, sim, VIDEO_PAD // 2)
        assert code == 3, err
        assert "Traceback" not in err
        assert "is larger than this process may write (ulimit -f)" in err
        assert parts_left(out) == []
        assert_every_job_at_the_api_is_in_the_ledger(out, sim)
        failed = Counter(e["event"] for e in ledger_events(out))["download-failed"]
        assert failed >= 1
        assert run_cli(manifest, out, sim) == 0  # the limit lifted: resumed, nothing twice
        assert set(sim.stats.submissions_by_fingerprint.values()) == {1}


def one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_a_read_only_folder_is_one_line_exit_2_for_every_command(
    freezable: tuple[Path, Callable[[], None]], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    where, freeze = freezable
    manifest = write_manifest(tmp_path, t2v_jobs(2))
    out = where / "out"
    with background_simulator(job_seconds=(60.0, 60.0)) as sim:
        assert run_cli(manifest, out, sim, "--job-timeout", "0.3") == 1  # in flight
        freeze()
        before = sum(sim.stats.requests_by_endpoint.values())
        capsys.readouterr()
        # run: into the folder (its lock) and into a new folder inside it (mkdir)
        assert run_cli(manifest, out, sim) == 2
        assert str(out) in one_line(capsys.readouterr().err)
        assert run_cli(manifest, where / "new", sim, "--new-batch") == 2
        assert str(where / "new") in one_line(capsys.readouterr().err)
        assert sum(sim.stats.requests_by_endpoint.values()) == before  # nothing was sent
        # report: report.html
        assert main(["report", str(out)]) == 2
        assert str(out) in one_line(capsys.readouterr().err)
        # plan --estimate: the folder of its upload cache
        assert main(["plan", str(manifest), "--estimate", "--base-url", sim.base_url,
                     "-o", str(where / "cache")]) == 2
        assert str(where / "cache") in one_line(capsys.readouterr().err)
        # cancel: the API cancels; the folder cannot record it, and says so
        assert main(["cancel", str(out), "--base-url", sim.base_url]) == 2
        captured = capsys.readouterr()
        assert "2 cancel request(s) accepted" in captured.out
        assert "the cancellations were not recorded" in one_line(captured.err)
        # status only reads: it works
        assert main(["status", str(out)]) == 4  # in flight, as far as the ledger knows
