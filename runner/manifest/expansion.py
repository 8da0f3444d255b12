"""One job entry of the manifest → one or more drafts: defaults merged, prompts and repeats
expanded. Ids are settled later (`ids.py`), once every draft's params are known.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.domain import Problem
from runner.manifest.yaml_source import LocDict, LocList, Mark, SourceFailure, problem, read_text
from runner.schemas import SchemaRegistry, suggest

JOB_KEYS = ("id", "model", "params", "prompts", "promptsFile", "repeat")
MAX_REPEAT = 10_000
# The most jobs one manifest may expand to: a typo like `repeat: 10000` over a 100,000-line
# prompts file must be refused before it is built, not exhaust memory building it.
MAX_JOBS = 1_000_000


@dataclass(frozen=True, slots=True)
class Draft:
    """A job before its id is final: `stem` None means "derive it from the content"."""

    stem: str | None
    number: str | None
    repeat: int
    model: Any
    params: LocDict
    mark: Mark


@dataclass(frozen=True, slots=True)
class Context:
    """What expansion needs besides the job: defaults, folders, schemas, the problem sink."""

    default_model: Any
    default_params: LocDict | None
    base_dir: Path
    shown_dir: str
    registry: SchemaRegistry
    problems: list[Problem]
    expanded: list[int] = field(default_factory=lambda: [0])  # jobs so far, in a cell


def expand_job(job: LocDict, ctx: Context) -> list[Draft]:
    """The drafts of one job entry; problems go to `ctx.problems` (an empty list if fatal)."""
    name = job.get("id") if isinstance(job.get("id"), str) else None
    _check_keys(job, name, ctx)
    model = job.get("model", ctx.default_model)
    if model is None:
        hint = "set model: on the job or under defaults:"
        ctx.problems.append(problem("no model", job.mark, job=name, path="model", hint=hint))
        return []
    params = _merged_params(job, ctx, name)
    if params is None:
        return []
    variants = _variants(job, params, ctx, name, model)
    repeat = _repeat(job, ctx, name)
    ctx.expanded[0] += len(variants) * repeat
    if ctx.expanded[0] > MAX_JOBS:
        message = (f"the manifest expands to more than {MAX_JOBS:,} jobs "
                   f"({ctx.expanded[0]:,} so far, {len(variants):,} x repeat {repeat:,} here)")
        hint = "split it into several manifests, or check repeat: and the prompts file"
        ctx.problems.append(problem(message, job.mark, job=name, path="repeat", hint=hint))
        return []
    stem = job.get("id") if "id" in job else None
    return [
        Draft(row_id or stem, number if row_id is None else None, r, model, row_params, mark)
        for number, row_id, row_params, mark in variants
        for r in range(1, repeat + 1)
    ]


def _check_keys(job: LocDict, name: str | None, ctx: Context) -> None:
    for key in job:
        if key not in JOB_KEYS:
            guess = suggest(str(key), JOB_KEYS)
            hint = f"did you mean {guess!r}?" if guess else f"a job has {', '.join(JOB_KEYS)}"
            if _is_param(key, ctx.registry):
                hint = "model parameters go under params:"
            message = f"unknown job key {key!r}"
            ctx.problems.append(problem(message, job.key_marks[key], job=name, hint=hint))


def _is_param(key: object, registry: SchemaRegistry) -> bool:
    return any(key in registry.schema(m).get("properties", {}) for m in registry.models)


def _merged_params(job: LocDict, ctx: Context, name: str | None) -> LocDict | None:
    own = job.get("params", LocDict(job.mark))
    if not isinstance(own, LocDict):
        mark = job.key_marks.get("params", job.mark)
        ctx.problems.append(problem("params must be a mapping", mark, job=name, path="params"))
        return None
    # Shallow merge: a job's key replaces the default's whole value; null removes it.
    merged = LocDict(own.mark)
    for source in (ctx.default_params or LocDict(own.mark), own):
        for key, value in source.items():
            merged.pop(key, None)
            merged.key_marks.pop(key, None)
            if value is not None:
                merged[key] = value
                merged.key_marks[key] = source.key_marks[key]
    return merged


_Variant = tuple[str | None, str | None, LocDict, Mark]  # number, row id, params, mark


def _variants(
    job: LocDict, params: LocDict, ctx: Context, name: str | None, model: Any
) -> list[_Variant]:
    if "prompts" in job and "promptsFile" in job:
        message = "give prompts or promptsFile, not both"
        ctx.problems.append(problem(message, job.key_marks["promptsFile"], job=name))
        return []
    if "prompts" in job:
        return _from_list(job, params, ctx, name)
    if "promptsFile" in job:
        return _from_file(job, params, ctx, name, model)
    return [(None, None, params, job.mark)]


def _from_list(job: LocDict, params: LocDict, ctx: Context, name: str | None) -> list[_Variant]:
    prompts = job["prompts"]
    if not isinstance(prompts, LocList) or not prompts:
        mark = job.key_marks["prompts"]
        message = "prompts must be a non-empty list of strings"
        ctx.problems.append(problem(message, mark, job=name, path="prompts"))
        return []
    rows = [
        ({"prompt": text}, mark) for text, mark in zip(prompts, prompts.item_marks, strict=True)
    ]
    return _numbered(rows, params)


def _numbered(rows: list[tuple[dict[str, Any], Mark]], params: LocDict) -> list[_Variant]:
    width = max(4, len(str(len(rows))))
    variants: list[_Variant] = []
    for index, (values, mark) in enumerate(rows, start=1):
        row_params = LocDict(params.mark)
        row_params.update(params)
        row_params.key_marks.update(params.key_marks)
        row_id = values.pop("id", None)
        for key, value in values.items():
            row_params[key] = value
            row_params.key_marks[key] = mark
        variants.append((f"{index:0{width}d}", row_id, row_params, mark))
    return variants


def _from_file(
    job: LocDict, params: LocDict, ctx: Context, name: str | None, model: Any
) -> list[_Variant]:
    mark = job.key_marks["promptsFile"]
    relative = job["promptsFile"]
    if not isinstance(relative, str) or not relative:
        message = "promptsFile must be a file path"
        ctx.problems.append(problem(message, mark, job=name, path="promptsFile"))
        return []
    shown = str(Path(ctx.shown_dir) / relative)
    try:
        text = read_text(ctx.base_dir / relative, shown)
    except SourceFailure as exc:
        ctx.problems.append(problem(f"promptsFile: {exc.problem.message}", mark, job=name))
        return []
    if relative.lower().endswith(".csv"):
        rows = _csv_rows(text, shown, ctx, model, name)
    else:
        rows = _text_rows(text, shown)
    if not rows:
        ctx.problems.append(problem(f"{shown} holds no prompts", mark, job=name))
    return _numbered(rows, params)


def _text_rows(text: str, shown: str) -> list[tuple[dict[str, Any], Mark]]:
    # One prompt per line; blank lines and `#` comments do not count.
    return [
        ({"prompt": line.strip()}, (shown, number, 1))
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]


def _csv_rows(
    text: str, shown: str, ctx: Context, model: Any, name: str | None
) -> list[tuple[dict[str, Any], Mark]]:
    registry = ctx.registry
    known = registry.schema(model).get("properties", {}) if model in registry.models else {}
    reader = csv.DictReader(text.splitlines())
    rows = []
    for row in reader:
        mark = (shown, reader.line_num, 1)
        # A row longer or shorter than the header would silently cut or shift a prompt.
        if None in row or any(cell is None for cell in row.values()):
            width = len(reader.fieldnames or ())
            message = f"this row does not have {width} cell(s) like the header"
            hint = 'quote cells that hold commas: "A knight, in fog"'
            ctx.problems.append(problem(message, mark, job=name, path="promptsFile", hint=hint))
            continue
        values = {
            key: _coerce(known.get(key, {}).get("type"), cell)
            for key, cell in row.items()
            if key and isinstance(cell, str) and cell != ""
        }
        rows.append((values, mark))
    return rows


def _coerce(kind: object, cell: str) -> Any:
    """A CSV cell as the type the schema wants; left as text when it does not parse."""
    try:
        if kind == "number":
            return float(cell)
        if kind == "integer":
            return int(cell)
    except ValueError:
        return cell
    if kind == "boolean" and cell.strip().lower() in ("true", "false"):
        return cell.strip().lower() == "true"
    return cell


def _repeat(job: LocDict, ctx: Context, name: str | None) -> int:
    repeat = job.get("repeat", 1)
    if isinstance(repeat, int) and not isinstance(repeat, bool) and 1 <= repeat <= MAX_REPEAT:
        return repeat
    message = f"repeat must be a whole number from 1 to {MAX_REPEAT:,}"
    ctx.problems.append(problem(message, job.key_marks["repeat"], job=name, path="repeat"))
    return 1
