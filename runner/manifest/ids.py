"""Job ids: given, numbered (`<id>-0001`, `<id>-0001-r2`) or derived from the content.

Ids name output files (`videos/<id>.mp4`), so they are restricted to `[A-Za-z0-9._-]`,
1-128 characters, never `.` or `..`, and unique even ignoring case (macOS and Windows
file systems would merge `Knight.mp4` and `knight.mp4`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from runner.canonical import canonical_json
from runner.domain import Problem
from runner.manifest.expansion import Draft
from runner.manifest.yaml_source import problem

ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,128}")
_ID_HINT = "use 1-128 letters, digits, '.', '_' or '-'"


def content_id(model: str, params: Mapping[str, Any]) -> str:
    """A stable id from what the job asks for, e.g. `v2-1-pro-3f9a1c2b7d`."""
    digest = hashlib.sha256(canonical_json({"model": model, "params": params}).encode())
    short = re.sub(r"[^A-Za-z0-9._-]", "-", model.removeprefix("model_").removeprefix("kling-"))
    return f"{short[:100]}-{digest.hexdigest()[:10]}"


def final_id(draft: Draft, params: Mapping[str, Any]) -> str:
    """The id a draft ends up with; a non-string stem is left to `id_problems` to report."""
    if draft.stem is None:
        parts = [content_id(str(draft.model), params)]
    else:
        parts = [str(draft.stem)] + ([draft.number] if draft.number else [])
    if draft.repeat > 1:
        parts.append(f"r{draft.repeat}")
    return "-".join(parts)


def draft_name(draft: Draft) -> str | None:
    """The job's id when it does not depend on its params (a given or numbered id), for
    problems found before the params can be hashed; None for a content-derived id."""
    if not isinstance(draft.stem, str):
        return None
    parts = [draft.stem] + ([draft.number] if draft.number else [])
    return "-".join(parts + ([f"r{draft.repeat}"] if draft.repeat > 1 else []))


def id_problems(draft: Draft, job_id: str, model: str | None) -> list[Problem]:
    """What is wrong with one final id on its own (duplicates are `DuplicateIds`' job)."""
    if draft.stem is not None and not isinstance(draft.stem, str):
        hint = f'quote it: id: "{draft.stem}"'
        return [problem("id must be a string", draft.mark, model=model, path="id", hint=hint)]
    if not ID_PATTERN.fullmatch(job_id) or job_id in (".", ".."):
        message = f"invalid id {job_id[:140]!r}"
        return [problem(message, draft.mark, model=model, path="id", hint=_ID_HINT)]
    return []


class DuplicateIds:
    """Remembers the ids seen so far and reports a repeat, even one differing only by case."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, str]] = {}

    def check(self, job_id: str, draft: Draft, model: str | None) -> Problem | None:
        """A problem when `job_id` was already used, else None."""
        folded = job_id.casefold()
        if folded not in self._seen:
            self._seen[folded] = (job_id, f"{draft.mark[0]}:{draft.mark[1]}")
            return None
        first, where = self._seen[folded]
        same = "the same id" if first == job_id else f"an id differing only by case ({first!r})"
        hint = "give each job its own id"
        if draft.stem is None:
            hint = "two jobs ask for exactly the same thing: use repeat: N, or give them ids"
        message = f"duplicate id {job_id!r}: {same} is used at {where}"
        return problem(message, draft.mark, job=job_id, model=model, path="id", hint=hint)
