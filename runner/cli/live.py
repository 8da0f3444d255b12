"""The live progress of `run`: a rich display on a terminal, plain periodic lines otherwise.

Both read `Progress.snapshot()`; neither changes anything. Notes (adoptions, halts, drain)
are printed once each as they arrive.
"""

from __future__ import annotations

import sys

import anyio
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from runner.batch import (
    Progress,
    Snapshot,
    account_cap,
    cost_text,
    ending_text,
    format_duration,
    format_rate,
    progress_line,
    retried_text,
)
from runner.domain import JobState

PLAIN_INTERVAL = 10.0
LIVE_INTERVAL = 0.5


async def render_progress(progress: Progress) -> None:
    """Show progress until cancelled (stderr, so stdout stays for results)."""
    if sys.stderr.isatty():
        await _render_live(progress)
    else:
        await _render_plain(progress)


async def _render_plain(progress: Progress) -> None:
    while True:
        await anyio.sleep(PLAIN_INTERVAL)
        for note in progress.unshown_notes():
            print(f"kling-batch: {note}", file=sys.stderr, flush=True)
        print(progress_line(progress.snapshot()), file=sys.stderr, flush=True)


def snapshot_table(snap: Snapshot) -> Table:
    """The live display: one row of counts per state, then rate, ETA, cost, failures
    retried, and why submissions stopped."""
    table = Table(title=f"kling-batch — {snap.total} jobs", expand=False)
    for state in JobState:
        table.add_column(state.value, justify="right", no_wrap=True)
    table.add_row(*(str(snap.states.get(s.value, 0)) for s in JobState))
    # Short lines: rich wraps a caption to the table's width.
    caption = (f"{format_rate(snap)} · ETA {format_duration(snap.eta_seconds)} · "
               f"elapsed {format_duration(snap.elapsed)}\n{cost_text(snap)}")
    if snap.adopted:
        caption += f"\nadopted {snap.adopted} (lost POSTs found at the API)"
    if snap.retried:
        caption += f"\n{retried_text(snap.retried)}"
    if snap.admission is not None and snap.admission.capped:
        caption += f"\n{account_cap(snap.admission)}"
    ending = ending_text(snap)
    if ending is not None:
        caption += f"\n{ending}"
    table.caption = caption
    return table


def note_text(note: str) -> Text:
    """A note for the terminal, as text (never markup: it may quote `[...]`). Printed with
    `overflow="ellipsis"`: wrapped between words only, and a word (a job id) too long for
    the line is cut with an ellipsis, never folded mid-word."""
    return Text(f"kling-batch: {note}")


async def _render_live(progress: Progress) -> None:
    console = Console(stderr=True)
    with Live(snapshot_table(progress.snapshot()), console=console, transient=True) as live:
        while True:
            await anyio.sleep(LIVE_INTERVAL)
            for note in progress.unshown_notes():
                live.console.print(note_text(note), overflow="ellipsis")
            live.update(snapshot_table(progress.snapshot()))
