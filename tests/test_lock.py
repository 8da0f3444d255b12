"""One runner per folder: a real second process holds (or held) the lock."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from runner.errors import EXIT_USAGE, LockedError
from runner.outdir import LOCK_NAME, LockInfo, hold_lock, read_lock

REPO = Path(__file__).resolve().parent.parent

# Takes the lock, says so on stdout once the lock file carries its pid, then waits to be
# killed; `--release` leaves the block at once instead, like a run that ends normally.
HOLDER = """
import sys, time
from pathlib import Path
from runner.outdir.lock import hold_lock
with hold_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    if sys.argv[2:] != ["--release"]:
        time.sleep(120)
"""


@contextmanager
def other_process_holding(directory: Path, *extra: str) -> Iterator[subprocess.Popen[str]]:
    """A live subprocess that holds the folder's lock; killed (SIGKILL) on exit."""
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(directory), *extra],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "locked"
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)


def written_pid(directory: Path) -> int:
    return int(json.loads((directory / LOCK_NAME).read_text())["pid"])


def test_a_fresh_folder_is_free_and_taken_without_a_stale_lock(tmp_path: Path) -> None:
    assert read_lock(tmp_path) is None
    with hold_lock(tmp_path) as taken:
        assert taken is None
        assert written_pid(tmp_path) == os.getpid()


def test_the_lock_file_says_who_holds_it(tmp_path: Path) -> None:
    with hold_lock(tmp_path):
        data = json.loads((tmp_path / LOCK_NAME).read_text())
        assert data["pid"] == os.getpid()
        assert data["host"] == socket.gethostname()
        assert data["started"].endswith("Z")
        info = read_lock(tmp_path)
    assert info == LockInfo(os.getpid(), socket.gethostname(), data["started"], stale=False)


def test_release_empties_the_file_and_frees_the_folder(tmp_path: Path) -> None:
    with hold_lock(tmp_path):
        pass
    assert (tmp_path / LOCK_NAME).read_bytes() == b""
    assert read_lock(tmp_path) is None
    with hold_lock(tmp_path) as taken:
        assert taken is None


def test_release_happens_when_the_block_raises(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), hold_lock(tmp_path):
        raise RuntimeError("run crashed")
    with hold_lock(tmp_path) as taken:
        assert taken is None


def test_a_second_hold_in_the_same_process_is_refused(tmp_path: Path) -> None:
    with hold_lock(tmp_path), pytest.raises(LockedError), hold_lock(tmp_path):
        pass


def test_another_live_process_holding_the_folder_refuses_us(tmp_path: Path) -> None:
    with other_process_holding(tmp_path) as proc:
        with pytest.raises(LockedError) as caught, hold_lock(tmp_path):
            pytest.fail("took a lock another process holds")
        message = str(caught.value)
        assert f"pid {proc.pid}" in message
        assert socket.gethostname() in message
        assert str(tmp_path) in message
        assert caught.value.exit_code == EXIT_USAGE
        # The refused attempt did not disturb the holder's record.
        assert written_pid(tmp_path) == proc.pid


def test_read_lock_reports_a_live_holder(tmp_path: Path) -> None:
    with other_process_holding(tmp_path) as proc:
        info = read_lock(tmp_path)
        assert info is not None
        assert (info.pid, info.host, info.stale) == (proc.pid, socket.gethostname(), False)


def test_a_lock_left_by_a_killed_process_is_stale_and_taken_over(tmp_path: Path) -> None:
    with other_process_holding(tmp_path) as proc:
        dead_pid = proc.pid
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    info = read_lock(tmp_path)
    assert info is not None
    assert (info.pid, info.stale) == (dead_pid, True)

    with hold_lock(tmp_path) as taken:
        assert taken is not None
        assert (taken.pid, taken.host, taken.stale) == (dead_pid, socket.gethostname(), True)
        assert taken.started is not None
        assert written_pid(tmp_path) == os.getpid()
        live = read_lock(tmp_path)
        assert live is not None and (live.pid, live.stale) == (os.getpid(), False)


def test_a_process_that_released_cleanly_leaves_no_stale_lock(tmp_path: Path) -> None:
    with other_process_holding(tmp_path, "--release") as proc:
        proc.wait(timeout=10)
    assert read_lock(tmp_path) is None
    with hold_lock(tmp_path) as taken:
        assert taken is None


def test_an_unreadable_stale_lock_file_is_taken_over(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).write_text("not json at all")
    assert read_lock(tmp_path) == LockInfo(None, None, None, stale=True)
    with hold_lock(tmp_path) as taken:
        assert taken == LockInfo(None, None, None, stale=True)
