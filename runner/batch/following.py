"""Following one job after its POST: to a terminal status (by listing or by its own GETs),
then downloading every asset it produced.

Every outcome is a ledger record and a frozen `FollowOutcome`. A job that does not end
within its deadline is recorded `timed-out`, one the API cannot be asked about
`poll-failed`: both stay in flight at the API, are not failures, and are polled again by
the next run. One the API keeps answering 404 for past the grace is recorded `lost`: a
failed job, posted again only with `--retry-failed`. Auth/credit failures come back as a halt
for the scheduler to apply.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from runner.api import DownloadedFile
from runner.batch.book import JobBook
from runner.batch.control import HaltReason, halt_reason_for
from runner.clock import Clock
from runner.domain import JobSpec, JobState, RemoteAsset, RemoteJob, RemoteStatus
from runner.errors import (
    ApiError,
    LocalWriteError,
    ObjectStoreError,
    PermanentApiError,
    TransientApiError,
    UploadVerificationError,
)
from runner.ledger import (
    Downloaded,
    DownloadFailed,
    Finished,
    Lost,
    Outcome,
    PollFailed,
    Running,
    Superseded,
    TimedOut,
)
from runner.outdir import (
    Destination,
    LocalFolder,
    superseded_relpath,
    video_relpath,
    write_failure,
)
from runner.polling import (
    JobGone,
    ListWatcher,
    PollPolicy,
    PollTimeout,
    is_not_found,
    server_seconds,
    wait_terminal,
)

LOST_HINT = ("it may have been dropped by the API, or created under other credentials; "
             "--retry-failed posts it again (a new, paid attempt)")


@dataclass(frozen=True, slots=True)
class FollowOutcome:
    """The job's terminal state, or None when it was not followed to the end (timed out,
    not pollable, or a halt)."""

    final: RemoteJob | None
    halt: HaltReason | None = None
    detail: str = ""


class Follower:
    """Follows jobs of one batch and downloads their files."""

    def __init__(
        self,
        *,
        book: JobBook,
        get_job: Callable[[str], Awaitable[RemoteJob]],
        watcher: ListWatcher | None,
        policy: PollPolicy,
        fetch: Callable[[str, Path, RemoteAsset | None], Awaitable[DownloadedFile]],
        locate: Callable[[str], Awaitable[RemoteAsset]] | None = None,
        out_dir: Path,
        note: Callable[[str], None],
        clock: Clock,
        halt: Callable[[HaltReason, str], None] = lambda _reason, _detail: None,
        destination: Destination | None = None,
    ) -> None:
        self._book = book
        # Where verified videos go: the folder itself unless told (an object store).
        self._destination = destination or LocalFolder(out_dir)
        self._halt = halt
        self._unwritable: str | None = None  # why the folder could not be written
        self._get_job = get_job
        self._watcher = watcher
        self._policy = policy
        self._fetch = fetch
        self._locate = locate
        self._out_dir = out_dir
        self._note = note
        self._clock = clock

    async def follow(self, spec: JobSpec, job_id: str, *, fresh: bool = False) -> FollowOutcome:
        """Poll until terminal and record the outcome. `fresh`: the job was just created by
        this run (a listing will show it; no direct look first)."""

        async def on_update(job: RemoteJob) -> None:
            if job.status in _RUNNING and self._book.state(spec.id) is JobState.SUBMITTED:
                await self._book.record(Running(job=spec.id, job_id=job_id,
                                                status=job.raw_status))

        try:
            final = await self._poll(spec, job_id, on_update, fresh=fresh)
        except PollTimeout:
            await self._book.record(TimedOut(
                job=spec.id, job_id=job_id,
                error=f"no terminal status within {self._policy.deadline:g}s"))
            return FollowOutcome(None)
        except JobGone as gone:
            await self._book.record(Lost(job=spec.id, job_id=job_id, error=f"lost: {gone}",
                                         hint=LOST_HINT))
            self._note(f"{spec.id}: lost — {gone}; --retry-failed posts it again")
            return FollowOutcome(None)
        except ApiError as exc:
            reason = halt_reason_for(exc)
            if reason is not None:
                return FollowOutcome(None, reason, str(exc))
            await self._book.record(PollFailed(job=spec.id, job_id=job_id,
                                               error=f"polling failed: {exc}"))
            return FollowOutcome(None)
        await self._book.record(Finished(
            job=spec.id, outcome=_OUTCOMES[final.status], job_id=final.job_id,
            status=final.raw_status, error=final.error, hint=final.hint,
            asset_ids=tuple(final.asset_ids), seconds=server_seconds(final)))
        return FollowOutcome(final)

    async def _poll(
        self, spec: JobSpec, job_id: str, on_update: Callable[[RemoteJob], Awaitable[None]],
        *, fresh: bool,
    ) -> RemoteJob:
        if self._watcher is None:
            return await wait_terminal(self._get_job, job_id, policy=self._policy,
                                       clock=self._clock, on_update=on_update)
        if not fresh:
            # A resumed job may have ended long before the listing's window: one direct
            # look first. A fresh one the listing shows (it keeps what ended early).
            try:
                job = await self._get_job(job_id)
            except TransientApiError:
                pass  # an outage: the listing (and its own fallback GETs) will tell
            except PermanentApiError as exc:
                if not is_not_found(exc):
                    raise
                # Unknown to the API: its own GETs tell within the grace whether it is gone.
                return await wait_terminal(self._get_job, job_id, policy=self._policy,
                                           clock=self._clock, on_update=on_update)
            else:
                await on_update(job)
                if job.status.terminal:
                    return job
        return await self._watcher.wait(job_id, deadline=self._policy.deadline,
                                        on_update=on_update,
                                        job_class=job_class(spec.model, spec.params))

    async def locate(self, asset_ids: tuple[str, ...]) -> dict[str, RemoteAsset]:
        """The assets with their signed URLs, looked up together (outside the download
        limit, so that jobs finishing together share one bulk lookup); what cannot be
        looked up now is left out (the download looks again)."""
        found: dict[str, RemoteAsset] = {}
        if self._locate is None:
            return found
        locate = self._locate

        async def one(asset_id: str) -> None:
            with contextlib.suppress(ApiError):  # the download will look again
                found[asset_id] = await locate(asset_id)

        async with anyio.create_task_group() as tg:
            for asset_id in dict.fromkeys(asset_ids):
                tg.start_soon(one, asset_id)
        return found

    async def supersede(self, spec: JobSpec) -> None:
        """Before a new attempt of a job with videos: set them aside, never overwrite a paid
        file. The ledger says where each goes before it moves (a killed run's moves are
        finished by the next one: `outdir.complete_moves`). Raises LocalWriteError or
        ObjectStoreError when the destination cannot move it."""
        record = self._book.get(spec.id)
        if record is None:
            return
        for asset in record.assets:
            if not await self._destination.holds(asset.path):
                continue  # gone already: nothing to keep, the new intent forgets it
            rel = superseded_relpath(spec.id, record.attempt, asset.path)
            await self._book.record(Superseded(
                job=spec.id, asset_id=asset.asset_id, path=rel, previous=asset.path,
                sha256=asset.sha256, bytes=asset.bytes, attempt=record.attempt))
            await self._destination.move(asset.path, rel)
            self._note(f"{spec.id}: its attempt-{record.attempt} video is kept at {rel}")

    async def download(
        self, spec: JobSpec, asset_ids: tuple[str, ...], have: frozenset[str] = frozenset(),
        located: Mapping[str, RemoteAsset] | None = None,
    ) -> bool:
        """Fetch every asset not in `have`; True when all files are in place and verified.
        `located`: assets already looked up (`locate`).

        A file the folder cannot take (disk full, read-only) halts the run, once; later
        downloads are not tried (each would fill the disk again, and the ledger needs its
        few bytes): they are recorded failed and the next run fetches them.
        """
        ok = True
        located = located or {}
        for index, asset_id in enumerate(asset_ids):
            if asset_id in have:
                continue
            if self._unwritable is not None:
                await self._book.record(DownloadFailed(
                    job=spec.id, asset_id=asset_id,
                    error=f"not downloaded: {self._unwritable}"))
                ok = False
                continue
            ok = await self._fetch_one(spec, asset_id, index, len(asset_ids),
                                       located.get(asset_id)) and ok
        return ok

    async def _fetch_one(
        self, spec: JobSpec, asset_id: str, index: int, count: int, known: RemoteAsset | None
    ) -> bool:
        rel = video_relpath(spec.id, index, count)

        def fetch(dest: Path) -> Awaitable[DownloadedFile]:
            return self._fetch(asset_id, dest, known)

        try:
            got = await self._destination.place(rel, fetch, known.size if known else None)
        except UploadVerificationError as exc:  # that one file: the next run fetches it again
            await self._book.record(DownloadFailed(job=spec.id, asset_id=asset_id,
                                                   error=f"not stored: {exc}"))
            self._note(f"{spec.id}: {exc}")
            return False
        except ObjectStoreError as exc:  # the store is unreachable or refuses: halt, once
            detail = f"{self._destination.describe()}: {exc}"
            self._unwritable = self._unwritable or detail
            self._halt(HaltReason.STORE, detail)
            await self._book.record(DownloadFailed(job=spec.id, asset_id=asset_id,
                                                   error=f"not stored: {detail}"))
            return False
        except ApiError as exc:
            await self._book.record(DownloadFailed(job=spec.id, asset_id=asset_id,
                                                   error=str(exc)))
            self._note(f"{spec.id}: download of {asset_id} failed: {exc}")
            return False
        except LocalWriteError as exc:
            detail = exc.message if exc.cause is None else write_failure(
                exc.cause, self._out_dir, exc.needed)
            self._unwritable = self._unwritable or detail
            self._halt(HaltReason.DISK, detail)
            await self._book.record(DownloadFailed(job=spec.id, asset_id=asset_id,
                                                   error=f"not written: {detail}"))
            return False
        await self._book.record(Downloaded(job=spec.id, asset_id=asset_id, path=rel,
                                           sha256=got.sha256, bytes=got.bytes))
        return True


def job_class(model: str, params: Mapping[str, Any]) -> tuple[str, str | None]:
    """Jobs expected to take alike: one model, one requested `duration` (motion control
    takes its length from the driving video: one class per model)."""
    duration = params.get("duration")
    return model, None if duration is None else str(duration)


_RUNNING = frozenset({RemoteStatus.WARMING_UP, RemoteStatus.IN_PROGRESS, RemoteStatus.FINALIZING})
_OUTCOMES = {
    RemoteStatus.SUCCESS: Outcome.SUCCEEDED,
    RemoteStatus.FAILURE: Outcome.FAILED,
    RemoteStatus.CANCELED: Outcome.CANCELED,
}
