"""The simulator's memory kept on disk, so a simulated run can be stopped and resumed.

`run --simulate` gives its in-process simulator `state_file = DIR/.simulator/state.json`
(and its files under `DIR/.simulator/files/`): the jobs (bodies, outcomes, durations,
cancels), the assets (uploaded inputs and outputs), the id and attempt counters and the
accounting per request fingerprint. It is written atomically (temp file, fsync, rename)
about once a second while requests change it, and when the simulator stops; the next
simulator started on the same file loads it. Job times are stored as wall-clock (unix)
seconds and mapped onto the new simulator's clock, so jobs keep progressing across the gap:
a job that was running when the run was interrupted may be done when it resumes, as at the
real API. A crash (SIGKILL) loses at most the last second of changes — the jobs created
then answer 404, which a resumed run treats as it would at the real API (reconciliation,
then `lost` past the grace).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import anyio

from runner.simulator.context import SimContext
from runner.simulator.faults import Outcome
from runner.simulator.state import Asset, Job

FORMAT = 1
SAVE_INTERVAL = 1.0  # seconds between two saves while requests change the state


def dump(context: SimContext) -> dict[str, Any]:
    """Everything a later simulator needs to answer for these jobs and assets."""
    state, stats = context.state, context.stats
    jobs = sorted(state.jobs.values(), key=lambda job: job.seq)
    return {
        "format": FORMAT, "seed": state.seed, "savedAt": context.unix(),
        "counters": dict(state._counters),
        "jobs": [{
            "jobId": j.job_id, "modelId": j.model_id, "fingerprint": j.fingerprint,
            "body": j.body, "created": context.unix(j.created), "duration": j.duration,
            "outcome": j.outcome.value, "assetIds": list(j.asset_ids), "cost": j.cost,
            "seq": j.seq, "canceledAt": j.canceled_at,
        } for j in jobs],
        "assets": [{
            "assetId": a.asset_id, "kind": a.kind, "mimeType": a.mime_type, "name": a.name,
            "source": a.source, "created": context.unix(a.created),
            "path": _relative(a.path, context.work_dir), "properties": dict(a.properties),
            "parentJobId": a.parent_job_id, "modelId": a.model_id,
        } for a in state.assets.values()],
        "submissionsByFingerprint": dict(stats.submissions_by_fingerprint),
        "generateAttemptsByFingerprint": dict(stats.generate_attempts_by_fingerprint),
        "creativeUnitsCharged": stats.creative_units_charged,
    }


def _relative(path: Path | None, work_dir: Path) -> str | None:
    if path is None:
        return None
    try:
        return str(path.relative_to(work_dir))
    except ValueError:
        return None  # outside the files folder: made again when asked for


def load(context: SimContext, data: dict[str, Any]) -> None:
    """Fill a fresh simulator's state from `dump`'s output (times moved onto its clock)."""
    if data.get("format") != FORMAT:
        raise ValueError(f"unknown simulator state format {data.get('format')!r}")
    state, stats = context.state, context.stats

    def mono(unix: float) -> float:
        return context.epoch_mono + (unix - context.epoch_unix)

    state._counters.update(data["counters"])
    for item in data["assets"]:
        path = context.work_dir / item["path"] if item["path"] else None
        state.assets[item["assetId"]] = Asset(
            item["assetId"], item["kind"], item["mimeType"], item["name"], item["source"],
            mono(item["created"]), path if path is not None and path.exists() else None,
            dict(item["properties"]) if path is not None and path.exists() else {},
            item["parentJobId"], item["modelId"],
        )
    for item in data["jobs"]:
        state.add_job(Job(
            item["jobId"], item["modelId"], item["fingerprint"], item["body"],
            mono(item["created"]), item["duration"], Outcome(item["outcome"]),
            tuple(item["assetIds"]), item["cost"], item["seq"], item["canceledAt"],
        ))
    stats.submissions_by_fingerprint.update(Counter(data["submissionsByFingerprint"]))
    stats.generate_attempts_by_fingerprint.update(
        Counter(data["generateAttemptsByFingerprint"]))
    stats.creative_units_charged += int(data["creativeUnitsCharged"])


def read(path: Path) -> dict[str, Any] | None:
    """The saved state, or None when there is none yet."""
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return data


def save(context: SimContext, path: Path) -> None:
    """Write the state atomically: a reader sees the old file or the new one, whole."""
    write(dump(context), path)


def write(data: dict[str, Any], path: Path) -> None:
    """Write `dump`'s output atomically (temp file, fsync, rename); any thread."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".state-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as sink:
            sink.write(text)
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


async def keep_saved(context: SimContext, path: Path) -> None:
    """Save about once a second while requests change the state (until cancelled)."""
    saved = context.changes
    while True:
        await anyio.sleep(SAVE_INTERVAL)
        if context.changes != saved:
            saved = context.changes
            data = dump(context)  # on the loop: the state does not change under it
            await anyio.to_thread.run_sync(write, data, path)
