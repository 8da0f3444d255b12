"""The command line: argparse, wiring and exit codes. Only this package prints.

Each subcommand lives in its own module exposing `add_arguments(parser)` and
`execute(args) -> int`; `COMMANDS` names them with their one line of help. Only the module of
the command that runs is imported (start-up: `--help` and `validate` never load aiohttp, the
simulator or PyAV). `main` catches the root of our exception tree, so a user's mistake never
shows a traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from runner import __version__
from runner.cli import output
from runner.errors import EXIT_INTERRUPTED, EXIT_USAGE, KlingBatchError

__all__ = ["build_parser", "main"]

# Failures of the machine, not bugs: no space, no permission, a read-only file system.
_ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM,
                                 errno.EROFS})


# Command -> (its module, one line of help).
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("runner.cli.validate",
                 "load and check a whole manifest; print every problem at once"),
    "plan": ("runner.cli.plan",
             "show the expanded job list, counts per model and total seconds of video"),
    "run": ("runner.cli.run", "run a manifest's jobs (or resume them) and download the videos"),
    "status": ("runner.cli.status", "show the state of every job of a run, from its ledger"),
    "cancel": ("runner.cli.cancel",
               "ask the API to cancel a run's in-flight jobs and report refusals"),
    "report": ("runner.cli.report",
               "write DIR/report.html (a self-contained page: summary, timeline, a card per "
               "job), DIR/results.csv and the dataset card DIR/README.md"),
    "export": ("runner.cli.export",
               "write the batch's videos as WebDataset tar shards (<key>.mp4 + <key>.json per "
               "sample)"),
    "simulate": ("runner.cli.simulate",
                 "serve the built-in Scenario API simulator (with its download CDN) for other "
                 "clients"),
}


def _chosen(argv: Sequence[str] | None) -> str | None:
    """The command `argv` names: its first word that is not an option."""
    if argv is None:
        return None
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in COMMANDS else None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with `argv`, only the command it names gets its arguments (and its
    module imported) — the others are listed by name and help."""
    parser = argparse.ArgumentParser(
        prog="kling-batch",
        description="Run batches of Scenario Kling video generations from a YAML manifest.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log lines on stderr (-v: info, -vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = _chosen(argv)
    for name, (module_name, text) in COMMANDS.items():
        command = sub.add_parser(name, help=text, description=text)
        if argv is None or name == chosen:
            module: ModuleType = importlib.import_module(module_name)
            module.add_arguments(command)
            command.set_defaults(execute=module.execute)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run kling-batch with `argv` (default: sys.argv[1:]) and return the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(arguments)
    args, extra = parser.parse_known_args(arguments)
    # A command's trailing list (cancel's ids) may follow its options, as people type it:
    # `cancel DIR --ledger URL 'shot-*'` (argparse alone takes it as unrecognized).
    trailing = getattr(args, "trailing_positionals", None)
    if extra:
        if trailing is None or any(e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        getattr(args, trailing).extend(extra)
    output.configure_logging(args.verbose)
    try:
        code: int = args.execute(args)
    except KlingBatchError as exc:
        output.error_line(exc)
        return exc.exit_code
    except BaseExceptionGroup as group:
        # A task group wraps what its tasks raised; ours are reported plainly, bugs not.
        ours, rest = group.split(KlingBatchError)
        if ours is None or rest is not None:
            raise
        first = _leaves(ours)[0]
        output.error_line(first)
        return first.exit_code
    except KeyboardInterrupt:
        output.err("interrupted")
        return EXIT_INTERRUPTED
    except OSError as exc:
        # The last net for a file system the commands did not expect to refuse (each
        # command names its folder itself where it writes): one line, never a traceback.
        if exc.errno not in _ENVIRONMENT_ERRNOS:
            raise
        output.err(f"error: {exc.strerror}: {exc.filename or ''}".rstrip(": "))
        return EXIT_USAGE
    return code


def _leaves(group: BaseExceptionGroup[KlingBatchError]) -> list[KlingBatchError]:
    found: list[KlingBatchError] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found.extend(_leaves(exc))
        else:
            found.append(exc)
    return found


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
