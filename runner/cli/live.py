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

from runner.batch import Progress, Snapshot, account_cap, format_duration, progress_line
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
    """The live display: one row of counts per state, then rate, ETA, failures."""
    table = Table(title=f"kling-batch — {snap.total} jobs", expand=False)
    for state in JobState:
        table.add_column(state.value, justify="right")
    table.add_row(*(str(snap.states.get(s.value, 0)) for s in JobState))
    table.caption = (
        f"{snap.completions_per_minute:.1f}/min · ETA {format_duration(snap.eta_seconds)}"
        f" · failures {snap.failures} · adopted {snap.adopted} · elapsed "
        f"{format_duration(snap.elapsed)}"
    )
    if snap.admission is not None and snap.admission.capped:
        table.caption += f"\n{account_cap(snap.admission)}"
    if snap.halt:
        table.caption += f"\nHALTED: {snap.halt} — finishing jobs in flight"
    elif snap.draining:
        table.caption += "\nDRAINING: no new submissions (Ctrl-C again to stop now)"
    return table


async def _render_live(progress: Progress) -> None:
    console = Console(stderr=True)
    with Live(snapshot_table(progress.snapshot()), console=console, transient=True) as live:
        while True:
            await anyio.sleep(LIVE_INTERVAL)
            for note in progress.unshown_notes():
                live.console.print(f"kling-batch: {note}")
            live.update(snapshot_table(progress.snapshot()))
