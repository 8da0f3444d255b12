"""Which of a manifest's jobs a run takes: `--only`, `--model` and `--limit` (a pilot).

One function, `select_jobs`, decides it for `run` and for `plan` alike, from the manifest
alone (never from the ledger), so the same flags always name the same jobs:

- `--only PATTERN` (repeatable): job ids and `fnmatch` globs (`shot-00*`, `city-?`); a job is
  in when any pattern matches it. A pattern that matches no job is a mistake (exit 2, with
  a did-you-mean), as an unknown key of the manifest is.
- `--model MODEL` (repeatable): jobs of these models. An unknown model is exit 2 with a
  did-you-mean; a known model that no job of the manifest uses is exit 2 too.
- `--limit N`: of what the two above leave, a pilot of N jobs spread across the models and
  templates: round-robin over the models in the order the manifest first uses them, and
  within each model round-robin over its templates (an expanded template's rows, each
  hand-written job its own), each in manifest order, a row's repeats after every first
  copy. The pilot is then run in manifest order. No randomness: the same manifest and N
  give the same N jobs run after run, so a pilot run twice is done the second time, and
  `plan --limit N` shows exactly what `run --limit N` runs.

The jobs left out are untouched: no event is written for them, they stay as they were
(pending, or whatever an earlier run left), and a later `run` without the flags continues
the same batch.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

from runner.domain import JobSpec
from runner.errors import UsageError
from runner.schemas import suggest


@dataclass(frozen=True, slots=True)
class Selection:
    """What the user asked for; the empty selection takes every job."""

    only: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    limit: int | None = None

    @property
    def everything(self) -> bool:
        return not self.only and not self.models and self.limit is None

    def describe(self) -> str:
        """The flags, as the user would type them again."""
        words = [f"--only {p}" for p in self.only] + [f"--model {m}" for m in self.models]
        if self.limit is not None:
            words.append(f"--limit {self.limit}")
        return " ".join(words)


def id_matches(job_id: str, pattern: str) -> bool:
    """`pattern` is this id, or a glob matching it (case-sensitive, as ids are)."""
    return job_id == pattern or fnmatch.fnmatchcase(job_id, pattern)


def check_patterns(patterns: Sequence[str], ids: Sequence[str], what: str = "job") -> None:
    """UsageError for the first pattern matching none of `ids`, with a did-you-mean."""
    for pattern in patterns:
        if not any(id_matches(i, pattern) for i in ids):
            guess = suggest(pattern, list(ids)) if len(ids) <= 20_000 else None
            hint = (f"did you mean {guess!r}?" if guess
                    else "a job id, or a glob such as 'shot-*' (quote it for the shell)")
            raise UsageError(f"--only {pattern!r} matches no {what} id", hint=hint)


def _check_models(wanted: Sequence[str], specs: Sequence[JobSpec], known: Sequence[str]) -> None:
    used = list(dict.fromkeys(spec.model for spec in specs))
    for model in wanted:
        if model not in known:
            guess = suggest(model, list(known))
            hint = f"did you mean {guess!r}?" if guess else f"known models: {', '.join(known)}"
            raise UsageError(f"--model {model!r} is not a known model", hint=hint)
        if model not in used:
            raise UsageError(f"--model {model!r}: no job of the manifest uses it",
                             hint=f"its models: {', '.join(used)}")


def _template(spec: JobSpec) -> str:
    """The template a job came from (its id when written by hand)."""
    return spec.numbering.stem if spec.numbering is not None else f"\0{spec.id}"


def _repeat(spec: JobSpec) -> int:
    return spec.numbering.repeat if spec.numbering is not None else 1


def _round_robin(groups: Sequence[Sequence[JobSpec]], limit: int) -> list[JobSpec]:
    taken: list[JobSpec] = []
    depth = 0
    while len(taken) < limit:
        row = [group[depth] for group in groups if depth < len(group)]
        if not row:
            break
        taken.extend(row[: limit - len(taken)])
        depth += 1
    return taken


def pilot(specs: Sequence[JobSpec], limit: int) -> list[JobSpec]:
    """N jobs spread over models, then templates (see the module's docstring), returned
    in manifest order."""
    if limit >= len(specs):
        return list(specs)
    by_model: dict[str, dict[str, list[JobSpec]]] = {}
    for spec in specs:
        by_model.setdefault(spec.model, {}).setdefault(_template(spec), []).append(spec)
    # Within a template, a row's repeats come after every row's first copy: a pilot wants
    # variety, and a repeat of a row already taken tells little more.
    per_model = [_round_robin([sorted(rows, key=_repeat) for rows in templates.values()],
                              len(specs))
                 for templates in by_model.values()]
    chosen = {spec.id for spec in _round_robin(per_model, limit)}
    return [spec for spec in specs if spec.id in chosen]


def select_jobs(
    specs: Sequence[JobSpec], selection: Selection, known_models: Sequence[str]
) -> list[JobSpec]:
    """The jobs `selection` takes, in manifest order; UsageError (exit 2, nothing sent) for
    a pattern that matches nothing or a model that is unknown or unused."""
    if selection.everything:
        return list(specs)
    if selection.limit is not None and selection.limit < 1:
        raise UsageError(f"--limit {selection.limit} is not valid", hint="a whole number >= 1")
    check_patterns(selection.only, [spec.id for spec in specs])
    _check_models(selection.models, specs, known_models)
    chosen = [
        spec for spec in specs
        if (not selection.only or any(id_matches(spec.id, p) for p in selection.only))
        and (not selection.models or spec.model in selection.models)
    ]
    if selection.limit is not None:
        chosen = pilot(chosen, selection.limit)
    return chosen
