"""`run`'s notifications: when the batch ends — done, failed, halted or interrupted (exit
130 included) — `--notify-command CMD` runs with the summary as JSON on its stdin, and
`--notify-url URL` is POSTed the same JSON plus `text`, a one-line summary that chat
webhooks (Slack, Mattermost, Discord's Slack-compatible endpoint) show as the message.

A notifier that fails (non-zero exit, no answer within `NOTIFY_TIMEOUT`, refused
connection, an HTTP error) is a warning on stderr, never a failed batch: the exit code is
the batch's. The URL may carry a token, so no message ever shows more of it than its
scheme and host, and the command is never echoed (it may hold one too).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import anyio

from runner.cli import output

NOTIFY_TIMEOUT = 30.0  # seconds a notifier may take


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`--notify-command CMD` and `--notify-url URL`."""
    group = parser.add_argument_group("notifications (when the batch ends or halts)")
    group.add_argument("--notify-command", metavar="CMD",
                       help="run this shell command with the summary as JSON on its stdin")
    group.add_argument("--notify-url", metavar="URL",
                       help="POST the summary as JSON (with a one-line `text`) to this URL")


def summary_text(summary: Mapping[str, Any]) -> str:
    """`kling-batch: demo — 6 succeeded — 7.2 CU — exit 0 (done)`."""
    counts = ", ".join(f"{n} {state}" for state, n in summary["counts"].items() if n)
    return (f"kling-batch: {summary['name']} — {counts or 'no jobs'} — "
            f"{summary['cuSpent']:g} CU — exit {summary['exitCode']} ({summary['outcome']})")


def where(url: str) -> str:
    """What a message may say of a URL: its scheme and host, never path, query or user."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


async def notify(command: str | None, url: str | None, summary: Mapping[str, Any]) -> None:
    """Run the notifiers that were asked for; failures are warnings."""
    if command:
        await _run_command(command, summary)
    if url:
        await _post(url, summary)


async def _run_command(command: str, summary: Mapping[str, Any]) -> None:
    body = json.dumps(summary, ensure_ascii=False).encode()
    try:
        with anyio.fail_after(NOTIFY_TIMEOUT):
            done = await anyio.run_process(command, input=body, check=False)
    except TimeoutError:
        output.err(f"warning: --notify-command did not finish within {NOTIFY_TIMEOUT:g} s "
                   "(the batch's exit code is unchanged)")
        return
    except OSError as exc:
        output.err(f"warning: --notify-command could not start ({exc.strerror}); the "
                   "batch's exit code is unchanged")
        return
    if done.returncode != 0:
        output.err(f"warning: --notify-command exited with {done.returncode} (the batch's "
                   "exit code is unchanged)")


async def _post(url: str, summary: Mapping[str, Any]) -> None:
    import aiohttp

    body = {**summary, "text": summary_text(summary)}
    failure: str | None = None
    try:
        timeout = aiohttp.ClientTimeout(total=NOTIFY_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session, \
                session.post(url, json=body, allow_redirects=False) as reply:
            if reply.status >= 300:
                failure = f"answered HTTP {reply.status}"
    except TimeoutError:
        failure = f"did not answer within {NOTIFY_TIMEOUT:g} s"
    except aiohttp.ClientConnectorError:
        failure = "could not be reached (connection refused or no route)"
    except (aiohttp.ClientError, ValueError) as exc:
        failure = f"failed ({type(exc).__name__})"  # never str(exc): it may quote the URL
    if failure is not None:
        output.err(f"warning: --notify-url {where(url)} {failure} (the batch's exit code "
                   "is unchanged)")
