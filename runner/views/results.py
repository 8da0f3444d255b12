"""`DIR/results.csv`: one row per job — also the jobs without a file — for spreadsheets.

The columns are the ones a person sorts by: state, model, cost, how long the API took,
error and hint. Times are ISO 8601 UTC; `submit_to_file_s` is seconds from the API taking
the job to its verified file. A job with several files lists their paths (and sha256s)
separated by spaces. Text that a spreadsheet would run as a formula (a cell starting with
`=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading `'`, as OWASP advises for
CSV exports; ids, numbers and paths never need it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from runner.clock import format_iso
from runner.views.jobs import JobView
from runner.views.timeline import JobTiming, Timeline

RESULT_COLUMNS = (
    "id", "state", "model", "prompt", "jobId", "attempt", "cost_cu", "video_seconds",
    "submitted", "finished", "file_at", "submit_to_file_s", "files", "bytes", "sha256",
    "error", "hint", "next_run",
)  # fmt: skip

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_text(text: str | None) -> str:
    """User text as a cell that a spreadsheet shows and never evaluates."""
    value = text or ""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def _when(seconds: float | None) -> str:
    return "" if seconds is None else format_iso(datetime.fromtimestamp(seconds, UTC))


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def result_row(view: JobView, timing: JobTiming | None) -> list[str]:
    """One job's cells, in RESULT_COLUMNS order."""
    t = timing or JobTiming()
    return [
        view.id, view.state.value, view.model or "", spreadsheet_text(view.prompt),
        view.job_id or "", str(view.attempt), _number(view.cost),
        "" if view.seconds is None else str(view.seconds),
        _when(t.submitted), _when(t.finished), _when(t.filed), _number(t.submit_to_file),
        " ".join(a.path for a in view.assets), str(sum(a.bytes for a in view.assets)),
        " ".join(a.sha256 for a in view.assets), spreadsheet_text(view.error),
        spreadsheet_text(view.hint), spreadsheet_text(view.next_reason),
    ]  # fmt: skip


def result_lines(views: Sequence[JobView], timeline: Timeline) -> Iterator[bytes]:
    """results.csv as UTF-8 lines: the header, then a row per view (CRLF, as RFC 4180)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def flush() -> bytes:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text.encode("utf-8")

    writer.writerow(RESULT_COLUMNS)
    yield flush()
    for view in views:
        writer.writerow(result_row(view, timeline.timings.get(view.id)))
        yield flush()
