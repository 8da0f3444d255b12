"""The few helpers that write to the terminal: results to stdout, diagnostics to stderr."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from runner.errors import KlingBatchError, UsageError


def out(text: str = "") -> None:
    """A line of the command's result, on stdout."""
    _to_stdout(lambda: print(text, file=sys.stdout, flush=True))


def _to_stdout(write: Callable[[], object]) -> None:
    # A reader that goes away (`kling-batch status DIR | head`) is not an error of ours:
    # the rest of the output goes nowhere and the command's exit code stays its own.
    try:
        write()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def err(text: str) -> None:
    """A diagnostic line, on stderr."""
    print(f"kling-batch: {text}", file=sys.stderr, flush=True)


def out_json(data: Any) -> None:
    """Machine-readable output on stdout, one JSON document."""

    def write() -> None:
        json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        sys.stdout.flush()

    _to_stdout(write)


def error_line(exc: KlingBatchError) -> None:
    """Print an error of ours, with its problems when it carries them."""
    problems = getattr(exc, "problems", ())
    for problem in problems:
        print(str(problem), file=sys.stderr)
    if isinstance(exc, UsageError) or not problems:
        err(f"error: {exc}")


def configure_logging(verbosity: int) -> None:
    """Log lines of the library go to stderr: warnings by default, more with -v/-vv."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("kling-batch: %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("runner")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
