"""The work of a run: each manifest job with what the ledger knows of it and what to do next.

Everything here may refuse the run before anything is sent: job ids whose videos would
share file names, and jobs that differ from what was submitted under the same id — in
model, in params, or in the content of a local input file (an image replaced under the
same name is a changed job; the ledger's intents record each input's sha256).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from runner.batch.resume import Action, changed_inputs, decide
from runner.batch.scheduler import WorkItem
from runner.domain import JobSpec
from runner.errors import UsageError
from runner.ledger import JobRecord
from runner.outdir import file_sha256, verified_assets, video_name_clashes


def _name_clashes(specs: Sequence[JobSpec], records: Mapping[str, JobRecord]) -> list[str]:
    """Clashing video names among the manifest's jobs and the ledger's jobs with files (a job
    that left the manifest keeps its paid videos), where a manifest job is involved."""
    planned = {spec.id for spec in specs}
    kept = {job for job, r in records.items() if r.assets}
    return [c for c in video_name_clashes(planned | kept)
            if c in planned or c.rpartition("_")[0] in planned]


def _current_inputs(
    spec: JobSpec, record: JobRecord | None, hashes: dict[Path, str]
) -> dict[str, tuple[str, str]]:
    """field -> (path as written, sha256 now) for the inputs the record knows (only those
    are hashed: a job never submitted has nothing to compare)."""
    known = {i.field for i in record.inputs} if record is not None else set()
    current: dict[str, tuple[str, str]] = {}
    for item in spec.inputs:
        if item.field not in known:
            continue
        path = item.path.resolve()
        if path not in hashes:
            try:
                hashes[path] = file_sha256(path)
            except OSError as exc:
                raise UsageError(f"{spec.id}: cannot read {item.value!r} "
                                 f"({exc.strerror or exc})") from None
        current[item.field] = (item.value, hashes[path])
    return current


def _refuse_changed(items: Iterable[WorkItem]) -> None:
    changed = [i for i in items if i.decision.action is Action.CHANGED]
    if not changed:
        return
    lines = "; ".join(f"{i.spec.id}: {', '.join(i.decision.changed)}" for i in changed[:20])
    more = f" (and {len(changed) - 20} more)" if len(changed) > 20 else ""
    raise UsageError(
        f"{len(changed)} job(s) differ from what was submitted under the same id: "
        f"{lines}{more}",
        hint="rename them to keep both, or pass --redo-changed (or --redo ID) to submit the "
        "new version; the ledger keeps the old attempt and superseded/ its video",
    )


def work_items(
    specs: Sequence[JobSpec], records: Mapping[str, JobRecord], out_dir: Path, *,
    retry_failed: bool, redo: Callable[[str], bool],
    verified: Callable[[JobRecord], frozenset[str]] | None = None,
) -> list[WorkItem]:
    """The work items of a run; raises UsageError (nothing sent) for clashing video names
    and for changed jobs not asked to be redone (`redo(job id)`). `verified(record)`: the
    asset ids whose files are in place (default: on disk under `out_dir`, re-hashed; an
    object store passes its own, e.g. `runner.objstore.stored_assets`)."""
    verified_of = verified or (lambda record: verified_assets(out_dir, record))
    clashes = _name_clashes(specs, records)
    if clashes:
        raise UsageError(
            f"job id(s) {', '.join(clashes[:10])} would share video file names with another "
            "job's extra videos (<id>_<n>.mp4)",
            hint="rename them, e.g. with '-' instead of '_' before the number",
        )
    hashes: dict[Path, str] = {}
    items: list[WorkItem] = []
    for spec in specs:
        record = records.get(spec.id)
        # Hashed once here: the decision and a later re-download both use the result.
        in_place = verified_of(record) if record else frozenset()
        files_ok = record is not None and len(in_place) == len(record.assets)
        inputs = changed_inputs(_current_inputs(spec, record, hashes), record)
        decision = decide(spec.model, spec.params, record, files_ok=files_ok,
                          retry_failed=retry_failed, redo=redo(spec.id),
                          changed_inputs=inputs)
        items.append(WorkItem(spec, decision, record, in_place))
    _refuse_changed(items)
    return items
