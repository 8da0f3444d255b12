"""`load_manifest`: a manifest file → validated JobSpecs, or every problem at once."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.domain import JobSpec, LocalInput, Numbering, Problem, RunSettings
from runner.errors import ManifestError
from runner.manifest.expansion import Context, Draft, expand_job
from runner.manifest.files import FileChecker
from runner.manifest.ids import DuplicateIds, draft_name, final_id, id_problems
from runner.manifest.settings import parse_settings
from runner.manifest.values import value_problems
from runner.manifest.yaml_builder import parse_yaml
from runner.manifest.yaml_source import (
    LocDict,
    LocList,
    Mark,
    SourceFailure,
    location,
    mark_at,
    problem,
    read_text,
    to_plain,
)
from runner.schemas import AssetInput, SchemaRegistry, format_path, parse_path, suggest

TOP_KEYS = ("version", "defaults", "settings", "jobs")
DEFAULT_KEYS = ("model", "params")
_SHAPE_HINT = "a manifest is a mapping: version: 1, defaults:, settings:, jobs: [...]"


@dataclass(frozen=True, slots=True)
class Manifest:
    """A loaded, valid manifest: its jobs in file order, run settings and warnings, and the
    SHA-256 of its text (what makes two copies of a manifest the same batch)."""

    path: Path
    jobs: tuple[JobSpec, ...]
    settings: RunSettings
    warnings: tuple[Problem, ...]
    sha256: str = ""


@dataclass(frozen=True, slots=True)
class _Checks:
    registry: SchemaRegistry
    allow_unknown: bool
    files: FileChecker | None
    ids: DuplicateIds
    base_dir: Path
    # One LocalInput per distinct (field, path): 100,000 jobs usually share a few files.
    inputs: dict[tuple[str, str], LocalInput] = dataclasses.field(default_factory=dict)

    def local_input(self, asset: AssetInput) -> LocalInput:
        key = (asset.path, asset.value)
        if key not in self.inputs:
            self.inputs[key] = LocalInput(asset.path, asset.pointer, asset.value,
                                          asset.local_path(self.base_dir))
        return self.inputs[key]


def load_manifest(
    path: Path,
    registry: SchemaRegistry,
    *,
    allow_unknown_params: bool = False,
    check_files: bool = True,
    allow_outside_files: bool = False,
) -> Manifest:
    """Load, expand and check the manifest at `path`.

    Raises ManifestError carrying every problem found (errors and warnings), each with its
    file, line, column, job, model and field path. Unknown params are errors unless
    `allow_unknown_params`, which makes them warnings and sends them as they are. Local
    files must resolve inside the manifest's folder unless `allow_outside_files`.
    """
    shown = str(path)
    problems: list[Problem] = []
    try:
        text = read_text(path, shown)
        digest = _text_sha256(text)
        root, problems, aliased = parse_yaml(text, shown)
        del text  # not kept alive while the jobs are built
    except SourceFailure as exc:
        raise ManifestError([exc.problem]) from None
    if root is None:
        hint = "start with version: 1 and a jobs: list"
        raise ManifestError([problem("the manifest is empty", (shown, 1, 1), hint=hint)])
    if not isinstance(root, LocDict):
        mark = getattr(root, "mark", (shown, 1, 1))
        found = type(root).__name__.removeprefix("Loc").lower()
        raise ManifestError([problem(f"found a {found} at the top", mark, hint=_SHAPE_HINT)])
    _check_top(root, problems)
    settings = parse_settings(root.get("settings"), registry.models, problems,
                              root.key_marks.get("settings"))
    base_dir = path.parent
    checks = _Checks(
        registry,
        allow_unknown_params,
        FileChecker(allow_outside=allow_outside_files) if check_files else None,
        DuplicateIds(),
        base_dir,
    )
    ctx = _context(root, base_dir, registry, problems)
    jobs = _load_jobs(root, ctx, checks, problems, release=not aliased)
    if any(p.severity == "error" for p in problems):
        raise ManifestError(sorted(_once_each(problems), key=_order))
    warnings = tuple(p for p in problems if p.severity == "warning")
    return Manifest(path, tuple(jobs), settings, warnings, digest)


def _text_sha256(text: str) -> str:
    """SHA-256 of the text as UTF-8, in slices (no second copy of a large manifest)."""
    digest = hashlib.sha256()
    for start in range(0, len(text), 1 << 20):
        digest.update(text[start:start + (1 << 20)].encode("utf-8"))
    return digest.hexdigest()


def _order(item: Problem) -> tuple[str, int, int]:
    where = item.location
    return (where.file, where.line, where.column) if where else ("", 0, 0)


def _check_top(root: LocDict, problems: list[Problem]) -> None:
    for key in root:
        # `x-...` keys are extension space, e.g. a place for YAML anchors to reuse.
        if key not in TOP_KEYS and not (isinstance(key, str) and key.startswith("x-")):
            guess = suggest(str(key), TOP_KEYS)
            hint = f"did you mean {guess!r}?" if guess else _SHAPE_HINT
            problems.append(
                problem(f"unknown top-level key {key!r}", root.key_marks[key], hint=hint)
            )
    if "version" not in root:
        problems.append(
            Problem(
                "no version: assuming 1",
                location(root.mark),
                hint="add version: 1",
                severity="warning",
            )
        )
    elif root["version"] != 1 or isinstance(root["version"], bool):
        message = f"unsupported version {root['version']!r}"
        problems.append(problem(message, root.key_marks["version"], path="version", hint="use 1"))


def _context(
    root: LocDict, base_dir: Path, registry: SchemaRegistry, problems: list[Problem]
) -> Context:
    defaults = root.get("defaults", LocDict(root.mark))
    if not isinstance(defaults, LocDict):
        mark = root.key_marks["defaults"]
        problems.append(problem("defaults must be a mapping", mark, hint="model: and params:"))
        defaults = LocDict(mark)
    for key in defaults:
        if key not in DEFAULT_KEYS:
            guess = suggest(str(key), DEFAULT_KEYS)
            hint = f"did you mean {guess!r}?" if guess else "defaults has model: and params:"
            problems.append(
                problem(f"unknown key {key!r} in defaults", defaults.key_marks[key], hint=hint)
            )
    params = defaults.get("params")
    if params is not None and not isinstance(params, LocDict):
        mark = defaults.key_marks["params"]
        problems.append(problem("defaults.params must be a mapping", mark, path="defaults.params"))
        params = None
    shown_dir = str(Path(root.mark[0]).parent)
    return Context(defaults.get("model"), params, base_dir, shown_dir, registry, problems)


def _load_jobs(
    root: LocDict, ctx: Context, checks: _Checks, problems: list[Problem], *, release: bool
) -> list[JobSpec]:
    """The specs of every job entry, in order.

    With `release`, each entry is dropped from the located tree once its specs are made, so
    the tree shrinks while the specs grow (peak memory: about one of the two, not both).
    Only when no alias shares a value: then nothing else can still need the entry.
    """
    entries = root.get("jobs")
    mark = root.key_marks.get("jobs", root.mark)
    if not isinstance(entries, LocList) or not entries:
        hint = "jobs: is a list of jobs, each with model: and params:"
        problems.append(problem("no jobs", mark, path="jobs", hint=hint))
        return []
    specs = []
    for index, (entry, entry_mark) in enumerate(zip(entries, entries.item_marks, strict=True)):
        if not isinstance(entry, LocDict):
            message = f"jobs[{index}] must be a mapping, not {_kind(entry)}"
            problems.append(
                problem(message, entry_mark, path=f"jobs[{index}]", hint="model:, params:")
            )
            continue
        for draft in expand_job(entry, ctx):
            specs.append(_finish(draft, checks, problems))
        if release:
            entries[index] = None
    return specs


def _kind(value: Any) -> str:
    return "a list" if isinstance(value, list) else f"{value!r}"[:40]


def _finish(draft: Draft, checks: _Checks, problems: list[Problem]) -> JobSpec:
    params = to_plain(draft.params)
    model = draft.model if isinstance(draft.model, str) else None
    found = value_problems(params)
    if any(item.fatal for item in found):
        name = draft_name(draft)
        for item in found:
            mark = mark_at(draft.params, item.pointer, draft.mark)
            problems.append(problem(item.message, mark, job=name, model=model,
                                    path=format_path(item.shown), hint=item.hint))
        return JobSpec(name or "", model or "", {}, location(draft.mark), checks.base_dir)
    job_id = final_id(draft, params)
    for item in found:
        problems.append(problem(item.message, mark_at(draft.params, item.pointer, draft.mark),
                                job=job_id, model=model, path=format_path(item.shown),
                                hint=item.hint))
    problems.extend(id_problems(draft, job_id, model))
    duplicate = checks.ids.check(job_id, draft, model)
    if duplicate is not None:
        problems.append(duplicate)
    if model is None:
        problems.append(problem("model must be a string", draft.mark, job=job_id, path="model"))
        return JobSpec(job_id, "", params, location(draft.mark), checks.base_dir)
    assets = checks.registry.asset_inputs(model, params)
    problems.extend(_param_problems(draft, job_id, model, params, checks, assets=assets))
    inputs = tuple(checks.local_input(a) for a in assets if not a.is_asset_id)
    return JobSpec(job_id, model, params, location(draft.mark), checks.base_dir, inputs,
                   _numbering(draft))


def _numbering(draft: Draft) -> Numbering | None:
    if not isinstance(draft.stem, str) or draft.number is None:
        return None
    return Numbering(draft.stem, int(draft.number), len(draft.number), draft.repeat)


def _param_problems(
    draft: Draft, job_id: str, model: str, params: dict[str, Any], checks: _Checks, *,
    assets: list[AssetInput],
) -> list[Problem]:
    found = []
    for item in checks.registry.check(model, params, allow_unknown=checks.allow_unknown):
        mark = _mark_of(draft, item.path)
        found.append(dataclasses.replace(item, location=location(mark), job=job_id))
    if checks.files is not None:
        for asset in assets:
            issue = checks.files.problem(asset, checks.base_dir)
            if issue is not None:
                mark = mark_at(draft.params, asset.pointer, draft.mark)
                found.append(
                    problem(
                        issue[0],
                        mark,
                        job=job_id,
                        model=model,
                        path=format_path(asset.pointer),
                        hint=issue[1],
                    )
                )
    return found


def _mark_of(draft: Draft, path: str | None) -> Mark:
    if not path or not path.startswith("params"):
        return draft.mark
    return mark_at(draft.params, parse_path(path), draft.mark)


def _once_each(problems: list[Problem]) -> list[Problem]:
    """One problem per place and message: a mistake under `defaults:` is reported once,
    saying how many jobs it affects, not once per job."""
    counts: dict[tuple[object, ...], int] = {}
    first: dict[tuple[object, ...], Problem] = {}
    for item in problems:
        key = (item.location, item.path, item.message, item.severity)
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, item)
    return [
        p if counts[k] == 1 else dataclasses.replace(
            p, job=None, message=f"{p.message} (in {counts[k]} jobs)")
        for k, p in first.items()
    ]
