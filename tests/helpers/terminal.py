"""A real `kling-batch` process on a pseudo-terminal: what a person at a terminal sees.

`Terminal.start(argv)` runs `python -m runner ARGV` with stdin, stdout and stderr on the
slave side of a pty (so `isatty()` is true and rich draws its live display), reads
everything the process writes from the master side on a thread, and lets a test type
(`send`), signal (`interrupt`) and wait for text (`wait_for`) or the exit code (`finish`).
`text()` is the output with the terminal's control sequences stripped.
"""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.helpers.runs import REPO

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][A-Za-z0-9]|\x1b[=>]|\r")


def strip_ansi(text: str) -> str:
    """The text without colour, cursor and erase sequences (and without carriage returns)."""
    return _ANSI.sub("", text)


class Terminal:
    """One process on a pty; see the module's doc."""

    def __init__(self, proc: subprocess.Popen[bytes], master: int) -> None:
        self.proc = proc
        self._master = master
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @classmethod
    def start(
        cls, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
        cwd: Path | None = None, columns: int = 120,
    ) -> Terminal:
        master, slave = pty.openpty()
        environment = {**os.environ, **(env or {}), "PYTHONPATH": str(REPO),
                       "TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": "40"}
        environment.pop("NO_COLOR", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "runner", *argv], stdin=slave, stdout=slave, stderr=slave,
            env=environment, cwd=cwd or REPO, close_fds=True,
        )
        os.close(slave)
        return cls(proc, master)

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._master, 65536)
            except OSError:  # EIO: the slave side closed (the process ended)
                return
            if not chunk:
                return
            with self._lock:
                self._chunks.append(chunk)

    def raw(self) -> str:
        with self._lock:
            return b"".join(self._chunks).decode(errors="replace")

    def text(self) -> str:
        """Everything written so far, control sequences stripped."""
        return strip_ansi(self.raw())

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        """The first match of `pattern` (a regex) in the text, waiting for it to appear."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text())
            if found is not None:
                return found
            if self.proc.poll() is not None:
                self._reader.join(timeout=5)
                found = re.search(pattern, self.text())
                if found is not None:
                    return found
                raise AssertionError(f"exited {self.proc.returncode} before {pattern!r}:\n"
                                     f"{self.text()[-3000:]}")
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} within {timeout} s:\n{self.text()[-3000:]}")

    def send(self, keys: str) -> None:
        """Type `keys` (a line needs its "\\n")."""
        os.write(self._master, keys.encode())

    def interrupt(self) -> None:
        """What Ctrl-C does: SIGINT to the process."""
        self.proc.send_signal(signal.SIGINT)

    def finish(self, timeout: float = 120.0) -> int:
        """Wait for the exit code; everything the process wrote is read by then."""
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._reader.join(timeout=5)
            os.close(self._master)
        return code
