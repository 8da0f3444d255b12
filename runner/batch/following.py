"""Following a submitted job to its end, and fetching what it made.

Functions over a batch's `JobFlow` (its client, ledger writer, progress and limits): poll
(or wait on the batch's listing) until a terminal status, record it, then download and
verify every asset. Outcomes are ledger records; only auth/credit failures halt the run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from runner.api.downloads import download_asset
from runner.batch.control import HaltReason
from runner.batch.submission import JobFlow
from runner.domain import JobSpec, JobState, RemoteJob, RemoteStatus
from runner.errors import ApiError, AuthError, CreditError, TransientApiError
from runner.outdir.files import video_relpath
from runner.polling.each import PollTimeout, wait_terminal


async def follow(flow: JobFlow, spec: JobSpec, job_id: str) -> RemoteJob | None:
    """Poll until terminal and record the outcome; None when it timed out or the API
    could not be asked."""
    async def on_update(job: RemoteJob) -> None:
        if job.status in _RUNNING and flow.states.get(spec.id) is JobState.SUBMITTED:
            await flow.record(spec.id, "running", jobId=job_id, status=job.raw_status)
            flow.set_state(spec.id, JobState.RUNNING)

    try:
        final = await _poll(flow, job_id, on_update)
    except PollTimeout:
        await flow.record(spec.id, "timed-out", jobId=job_id,
                          error=f"no terminal status within {flow.config.poll.deadline:g}s")
        flow.set_state(spec.id, JobState.FAILED)
        return None
    except (AuthError, CreditError) as exc:
        flow.halt(HaltReason.AUTH if isinstance(exc, AuthError) else HaltReason.CREDIT,
                  str(exc))
        return None
    except ApiError as exc:
        await flow.record(spec.id, "timed-out", jobId=job_id, error=f"polling failed: {exc}")
        flow.set_state(spec.id, JobState.FAILED)
        return None
    await _terminal(flow, spec, final)
    return final

async def _poll(
    flow: JobFlow, job_id: str, on_update: Callable[[RemoteJob], Awaitable[None]]
) -> RemoteJob:
    if flow.watcher is None:
        return await wait_terminal(flow.client.get_job, job_id, policy=flow.config.poll,
                                   clock=flow.clock, sleep=flow.sleep, on_update=on_update)
    # One direct look first: a resumed job may have ended long before the listing's
    # window, and a fast one before it was registered.
    try:
        job = await flow.client.get_job(job_id)
    except TransientApiError:
        pass  # an outage: the listing (and its own fallback GETs) will tell
    else:
        await on_update(job)
        if job.status.terminal:
            return job
    return await flow.watcher.wait(job_id, deadline=flow.config.poll.deadline,
                                   on_update=on_update)

async def _terminal(flow: JobFlow, spec: JobSpec, job: RemoteJob) -> None:
    event, state = _TERMINAL_EVENTS[job.status]
    await flow.record(spec.id, event, jobId=job.job_id, status=job.raw_status,
                      error=job.error, hint=job.hint, assetIds=list(job.asset_ids) or None)
    flow.set_state(spec.id, state)

async def download_all(flow: JobFlow, spec: JobSpec, asset_ids: tuple[str, ...],
                       have: frozenset[str] = frozenset()) -> bool:
    """Fetch every asset not in `have`; True when all files are in place and verified."""
    ok = True
    for index, asset_id in enumerate(asset_ids):
        if asset_id in have:
            continue
        rel = video_relpath(spec.id, index, len(asset_ids))
        try:
            got = await download_asset(flow.client, flow.cdn_session, asset_id,
                                       flow.config.out_dir / rel, sleep=flow.sleep)
        except ApiError as exc:
            ok = False
            await flow.record(spec.id, "download-failed", assetId=asset_id, error=str(exc))
            flow.progress.note(f"{spec.id}: download of {asset_id} failed: {exc}")
            continue
        await flow.record(spec.id, "downloaded", assetId=asset_id, path=rel,
                          sha256=got.sha256, bytes=got.bytes)
        flow.progress.downloaded += 1
    return ok


_RUNNING = frozenset({RemoteStatus.WARMING_UP, RemoteStatus.IN_PROGRESS, RemoteStatus.FINALIZING})
_TERMINAL_EVENTS = {
    RemoteStatus.SUCCESS: ("succeeded", JobState.SUCCEEDED),
    RemoteStatus.FAILURE: ("failed", JobState.FAILED),
    RemoteStatus.CANCELED: ("canceled", JobState.CANCELED),
}
