"""The command line: argparse, wiring and exit codes. Only this package prints.

Each subcommand lives in its own module exposing `NAME`, `HELP`, `add_arguments(parser)` and
`execute(args) -> int`. `main` catches the root of our exception tree, so a user's mistake
never shows a traceback.
"""

from __future__ import annotations

import argparse
import errno
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


def _commands() -> list[ModuleType]:
    # Imported here so that `--version` and errors in one command do not cost the others.
    from runner.cli import cancel, plan, report, run, simulate, status, validate

    return [validate, plan, run, status, cancel, report, simulate]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kling-batch",
        description="Run batches of Scenario Kling video generations from a YAML manifest.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log lines on stderr (-v: info, -vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _commands():
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(execute=module.execute)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run kling-batch with `argv` (default: sys.argv[1:]) and return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
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
