"""One job entry of the manifest → one or more drafts: defaults merged, prompts and repeats
expanded. Ids are settled later (`ids.py`), once every draft's params are known.
"""

from __future__ import annotations

import csv
import io
import math
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
    rows: list[_Row] = [
        ({"prompt": text}, mark) for text, mark in zip(prompts, prompts.item_marks, strict=True)
    ]
    return _numbered(rows, params)


_Row = tuple[dict[str, Any] | None, Mark]  # a row's values (None: a bad row), its mark


def _width(count: int) -> int:
    return max(4, len(str(count)))


def row_name(stem: str | None, index: int, count: int) -> str | None:
    """The id the `index`-th (1-based) of `count` rows of template `stem` gets (None for a
    template without an id: its jobs' ids derive from their content)."""
    return None if stem is None else f"{stem}-{index:0{_width(count)}d}"


def _numbered(rows: list[_Row], params: LocDict) -> list[_Variant]:
    # A bad row keeps its number, so the rows after it keep theirs once it is fixed.
    width = _width(len(rows))
    variants: list[_Variant] = []
    for index, (values, mark) in enumerate(rows, start=1):
        if values is None:
            continue
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
    if not any(values is not None for values, _mark in rows) and not _has_errors(ctx, shown):
        ctx.problems.append(problem(f"{shown} holds no prompts", mark, job=name))
    return _numbered(rows, params)


def _has_errors(ctx: Context, shown: str) -> bool:
    return any(p.location is not None and p.location.file == shown for p in ctx.problems)


def _text_rows(text: str, shown: str) -> list[_Row]:
    # One prompt per line, split at "\n" only (CRLF allowed): str.splitlines would also
    # split at U+2028, U+0085 and other separators inside a prompt, making two jobs of one
    # and shifting every later id. Blank lines and `#` comments do not count.
    rows: list[_Row] = []
    for number, line in enumerate(text.split("\n"), start=1):
        prompt = line.removesuffix("\r").strip()
        if prompt and not prompt.startswith("#"):
            rows.append(({"prompt": prompt}, (shown, number, 1)))
    return rows


def _csv_rows(
    text: str, shown: str, ctx: Context, model: Any, name: str | None
) -> list[_Row]:
    """The data rows of a CSV prompts file, read with the csv module's own newline handling
    (a quoted cell keeps its line breaks); a row of the wrong width is a located problem
    named after the job it would have been."""
    registry = ctx.registry
    known = registry.schema(model).get("properties", {}) if model in registry.models else {}
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    rows: list[_Row] = []
    start = 1
    try:
        for cells in reader:
            mark: Mark = (shown, start, 1)
            start = reader.line_num + 1
            if not cells:
                continue
            if header is None:
                header = _header(cells, mark, ctx, name)
            elif len(cells) != len(header):
                rows.append((None, mark))
            else:
                rows.append(({key: _coerce(known.get(key, {}).get("type"), cell)
                              for key, cell in zip(header, cells, strict=True)
                              if key and cell != ""}, mark))
    except csv.Error as exc:
        message = f"this is not valid CSV: {exc}"
        hint = 'quote cells that hold commas, quotes or line breaks: "A knight, in fog"'
        # Where the record that does not parse begins (an open quote runs to the end).
        ctx.problems.append(problem(message, (shown, start, 1), job=name,
                                    path="promptsFile", hint=hint))
    _width_problems(rows, len(header or ()), ctx, name)
    return rows


def _header(cells: list[str], mark: Mark, ctx: Context, name: str | None) -> list[str]:
    names = [cell.strip() for cell in cells]
    for index, cell in enumerate(names):
        if not cell:
            message = f"column {index + 1} of the header has no name"
            ctx.problems.append(problem(message, mark, job=name, path="promptsFile",
                                        hint="name every column after the param it fills"))
        elif names.index(cell) != index:
            message = f"column {cell!r} appears twice in the header"
            ctx.problems.append(problem(message, mark, job=name, path="promptsFile"))
    return names


def _width_problems(rows: list[_Row], width: int, ctx: Context, name: str | None) -> None:
    # A row longer or shorter than the header would silently cut or shift a prompt.
    for index, (values, mark) in enumerate(rows, start=1):
        if values is None:
            message = f"this row does not have {width} cell(s) like the header"
            hint = 'quote cells that hold commas: "A knight, in fog"'
            ctx.problems.append(problem(message, mark, job=row_name(name, index, len(rows)),
                                        path="promptsFile", hint=hint))


def _coerce(kind: object, cell: str) -> Any:
    """A CSV cell as the type the schema wants; left as text when it does not parse."""
    try:
        if kind == "number" and math.isfinite(number := float(cell)):
            return number
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
