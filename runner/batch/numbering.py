"""Expanded ids that stay put: a row of a prompts file keeps the id it was paid under.

Rows of `prompts:` or a prompts file are numbered by position (`animals-0001`, ...). Left
alone, deleting line 2 would give line 3 the id `-0002`: a "changed job" whose redo pays
for line 3 again, and overwrites line 2's paid video. So before deciding anything a run
maps each row of a template onto the ledger's jobs of that template by content (model and
params), in three passes:

1. a row whose own number's job has the same content keeps its number;
2. a row whose content is another number's job (not claimed yet) takes that number;
3. any other row keeps its own number when no row took it (an edited line stays a changed
   job, refused as before), else gets the lowest number no job has or had.

So deleting or inserting lines costs nothing and pays for nothing; `plan` (which knows no
folder) shows the positional ids, `status` the ids the folder uses.
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from runner.canonical import canonical_json
from runner.domain import JobSpec, Numbering
from runner.ledger import JobRecord

_Key = tuple[str, str]  # model, canonical params


def _key(model: str | None, params: Mapping[str, Any] | None) -> _Key:
    return str(model), canonical_json(dict(params or {}))


_NUMBERED = re.compile(r"(.+)-(\d+)")


def _paid_rows(records: Mapping[str, JobRecord]) -> dict[str, dict[int, _Key]]:
    """stem -> number -> content of the ledger's first-copy jobs `<stem>-<digits>`, in one
    pass over the records (a manifest may have thousands of templates)."""
    rows: dict[str, dict[int, _Key]] = defaultdict(dict)
    for job, record in records.items():
        found = _NUMBERED.fullmatch(job)
        if found is not None and record.params is not None:
            rows[found.group(1)][int(found.group(2))] = _key(record.model, record.params)
    return rows


def row_numbers(
    rows: Mapping[int, _Key], paid: Mapping[int, _Key], occupied: frozenset[int] = frozenset()
) -> dict[int, int]:
    """Each row's number (own number -> number to use), from the rows' contents and the
    paid rows' contents, by the three passes above; a fresh number skips `occupied` ones
    (ids another job of the manifest has)."""
    chosen: dict[int, int] = {n: n for n, key in rows.items() if paid.get(n) == key}
    claimed = set(chosen.values())
    free: dict[_Key, list[int]] = defaultdict(list)
    for number, key in sorted(paid.items()):
        if number not in claimed:
            free[key].append(number)
    for number, key in rows.items():
        if number not in chosen and free[key]:
            chosen[number] = free[key].pop(0)
            claimed.add(chosen[number])
    keepers = {n for n in rows if n not in chosen and n not in claimed}
    chosen.update((n, n) for n in keepers)
    taken = {*chosen.values(), *paid, *occupied}
    fresh = 1
    for number in rows:
        if number not in chosen:
            while fresh in taken:
                fresh += 1
            chosen[number] = fresh
            taken.add(fresh)
    return chosen


def _occupied(specs: Sequence[JobSpec]) -> dict[str, frozenset[int]]:
    """stem (case-folded) -> the numbers that jobs with given ids hold, e.g. `shot-0007`."""
    held: dict[str, set[int]] = defaultdict(set)
    for spec in specs:
        if spec.numbering is None and (found := _NUMBERED.fullmatch(spec.id)) is not None:
            held[found.group(1).casefold()].add(int(found.group(2)))
    return {stem: frozenset(numbers) for stem, numbers in held.items()}


def _in_place(specs: Sequence[JobSpec], records: Mapping[str, JobRecord]) -> bool:
    """True when every expanded job has its own paid job, the same: nothing moved (the
    common resume, decided without hashing 100,000 params)."""
    for spec in specs:
        if spec.numbering is None:
            continue
        record = records.get(spec.id)
        if record is None or record.model != spec.model or record.params != spec.params:
            return False
    return True


def keep_paid_numbers(
    specs: Sequence[JobSpec], records: Mapping[str, JobRecord]
) -> tuple[tuple[JobSpec, ...], tuple[str, ...]]:
    """The specs with expanded ids mapped onto the ids their rows were paid under, and one
    line per template whose rows moved (nothing changes when nothing moved)."""
    if not records or _in_place(specs, records):
        return tuple(specs), ()
    groups: dict[str, dict[int, _Key]] = defaultdict(dict)
    for spec in specs:
        if spec.numbering is not None and spec.numbering.repeat == 1:
            groups[spec.numbering.stem][spec.numbering.number] = _key(spec.model, spec.params)
    paid, occupied = _paid_rows(records), _occupied(specs)
    moves: dict[str, dict[int, int]] = {}
    for stem, rows in groups.items():
        chosen = row_numbers(rows, paid.get(stem, {}),
                             occupied.get(stem.casefold(), frozenset()))
        if any(old != new for old, new in chosen.items()):
            moves[stem] = chosen
    if not moves:
        return tuple(specs), ()
    renamed = tuple(_renamed(spec, moves) for spec in specs)
    notes = tuple(_note(stem, chosen, renamed) for stem, chosen in moves.items())
    return renamed, notes


def _renamed(spec: JobSpec, moves: Mapping[str, Mapping[int, int]]) -> JobSpec:
    numbering = spec.numbering
    if numbering is None or numbering.stem not in moves:
        return spec
    number = moves[numbering.stem][numbering.number]
    if number == numbering.number:
        return spec
    moved = Numbering(numbering.stem, number, numbering.width, numbering.repeat)
    return dataclasses.replace(spec, id=moved.id_for(number), numbering=moved)


def _note(stem: str, chosen: Mapping[int, int], specs: Sequence[JobSpec]) -> str:
    width = next(s.numbering.width for s in specs
                 if s.numbering is not None and s.numbering.stem == stem)
    moved = [(old, new) for old, new in chosen.items() if old != new]
    shown = ", ".join(f"row {old} is {stem}-{new:0{width}d}" for old, new in moved[:3])
    more = ", …" if len(moved) > 3 else ""
    return (f"{len(moved)} row(s) of '{stem}' moved in its prompts and keep the ids they were "
            f"paid under ({shown}{more})")
