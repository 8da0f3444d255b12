"""`run`'s question before a costly batch: the dry-run estimate, then "Submit them? [y/N]".

Asked only when a person can answer: stdin and stderr are terminals, `--yes` was not given,
and the jobs this run would submit are estimated (the API's dry run, as `plan --estimate`
prices them: one dry run per price shape, nothing generated) above the threshold —
`--confirm-above CU` (setting `confirmAbove`), by default `DEFAULT_CONFIRM_ABOVE` against
the real API and never with `--simulate` unless asked (its CU are not money). A script, a
cron job or a pipe (stdin not a terminal) is never asked and never pays for the estimate.
Anything but `y`/`yes` (an empty line, end of input) is no: nothing is submitted, exit 2.
"""

from __future__ import annotations

import argparse
import sys

import anyio.to_thread

from runner.api import AssetUploader, ScenarioClient
from runner.batch import Action, Endpoint, PreparedRun, api_sessions, estimate_jobs
from runner.schemas import SchemaRegistry

DEFAULT_CONFIRM_ABOVE = 1000.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`--confirm-above CU` and `--yes`."""
    group = parser.add_argument_group("confirmation (on a terminal only)")
    group.add_argument("--confirm-above", metavar="CU",
                       help="ask before submitting jobs whose dry-run estimate passes this "
                       f"many CU (default {DEFAULT_CONFIRM_ABOVE:g}; with --simulate: never)")
    group.add_argument("-y", "--yes", action="store_true",
                       help="do not ask for confirmation, whatever the estimate")


def threshold(flag: float | None, setting: float | None, *, simulated: bool) -> float | None:
    """The CU above which to ask (flag, then setting, then the default); None: never."""
    if flag is not None:
        return flag
    if setting is not None:
        return setting
    return None if simulated else DEFAULT_CONFIRM_ABOVE


def interactive() -> bool:
    """A person at a terminal can answer (stdin and stderr are both terminals)."""
    return sys.stdin.isatty() and sys.stderr.isatty()


async def confirmed(
    prepared: PreparedRun, registry: SchemaRegistry, endpoint: Endpoint,
    above: float | None, *, yes: bool,
) -> bool:
    """False when the person at the terminal declined the estimated spend."""
    if yes or above is None or not interactive():
        return True
    specs = [i.spec for i in prepared.items if i.decision.action is Action.SUBMIT]
    if not specs:
        return True
    out_dir = prepared.options.out_dir
    async with api_sessions() as (api, cdn):
        client = ScenarioClient(api, endpoint.base_url, endpoint.credentials)
        uploader = AssetUploader(client, cdn, out_dir / ".cache" / "assets.json")
        estimate = await estimate_jobs(specs, registry, client, uploader)
    if estimate.total <= above:
        return True
    budget = prepared.options.budget
    limit = f"; --budget {budget:g} CU" if budget is not None else ""
    question = (f"this run would submit {len(specs)} job(s) for an estimated "
                f"{estimate.total:g} CU (dry-run prices{limit}), above {above:g} CU. "
                "Submit them? [y/N] ")
    answer = await anyio.to_thread.run_sync(_ask, question)
    return answer.strip().lower() in ("y", "yes")


def _ask(question: str) -> str:
    sys.stderr.write(question)
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        sys.stderr.write("\n")
    return line
