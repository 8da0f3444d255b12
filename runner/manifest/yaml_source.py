"""Hostile-proof YAML reading: safe_load's values, plus where every key and item stands.

PyYAML's composer builds a node graph several times the size of the file (a 15 MB manifest
needs ~470 MB and 9 s), and its constructor expands aliases without limit ("billion laughs").
So we read libyaml's *event* stream (C speed, flat memory) and build plain values ourselves:

- mappings become `LocDict` and sequences `LocList`, which remember the mark of each key and
  item, so that any problem can point at `file:line:column`;
- an alias shares the anchored value instead of copying it, and the nodes that aliases would
  expand to are counted: past `MAX_ALIAS_NODES` the file is refused on the spot;
- nesting deeper than `MAX_DEPTH` is refused, so later recursive walks are safe;
- files over `MAX_BYTES` are refused before a byte is parsed.

Scalars resolve as in `yaml.safe_load` (YAML 1.1: `yes` is true, `5` an int, `"5"` a str),
except timestamps, which stay strings. Tags outside the core schema are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner.domain import Problem, SourceLocation

MAX_BYTES = 64 * 1024 * 1024
MAX_ALIAS_NODES = 1_000_000
MAX_DEPTH = 64

Mark = tuple[str, int, int]  # file, 1-based line, 1-based column


class LocDict(dict[Any, Any]):
    """A mapping from the YAML file, with the mark of itself and of each of its keys."""

    __slots__ = ("key_marks", "mark")

    def __init__(self, mark: Mark) -> None:
        super().__init__()
        self.mark = mark
        self.key_marks: dict[Any, Mark] = {}


class LocList(list[Any]):
    """A sequence from the YAML file, with the mark of itself and of each of its items."""

    __slots__ = ("item_marks", "mark")

    def __init__(self, mark: Mark) -> None:
        super().__init__()
        self.mark = mark
        self.item_marks: list[Mark] = []


class SourceFailure(Exception):
    """The file cannot be read or parsed at all; carries the one problem that says why."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def location(mark: Mark) -> SourceLocation:
    """A mark as the domain's SourceLocation."""
    return SourceLocation(*mark)


def fail(message: str, mark: Mark, *, hint: str | None = None) -> SourceFailure:
    """A SourceFailure at `mark` (for the caller to raise)."""
    return SourceFailure(Problem(message, location(mark), hint=hint))


def read_text(path: Path, shown: str) -> str:
    """The UTF-8 text of `path`, refusing directories, huge files and undecodable bytes."""
    start: Mark = (shown, 1, 1)
    try:
        with path.open("rb") as stream:
            # Read one byte past the limit instead of trusting stat (FIFOs, /proc, growing files).
            data = stream.read(MAX_BYTES + 1)
    except IsADirectoryError:
        raise fail("is a directory, not a manifest file", start) from None
    except FileNotFoundError:
        raise fail("file not found", start, hint="check the path") from None
    except OSError as exc:
        raise fail(f"cannot read: {exc.strerror or exc}", start) from None
    if len(data) > MAX_BYTES:
        limit = f"{MAX_BYTES // (1024 * 1024)} MiB"
        raise fail(f"file is larger than {limit}", start, hint="split it into several manifests")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        hint = "save the file as UTF-8"
        bad = f"byte 0x{data[exc.start]:02x} is not UTF-8"
        raise fail(bad, (shown, line, column), hint=hint) from None


def problem(
    message: str,
    mark: Mark,
    *,
    job: str | None = None,
    model: str | None = None,
    path: str | None = None,
    hint: str | None = None,
) -> Problem:
    """An error at `mark`, the way every manifest problem is built."""
    return Problem(message, location(mark), job, model, path, hint)


def mark_at(value: Any, pointer: tuple[str | int, ...], fallback: Mark) -> Mark:
    """The mark of the deepest node of `pointer` that exists under `value`."""
    best = getattr(value, "mark", fallback)
    for part in pointer:
        if isinstance(value, LocDict) and part in value:
            best, value = value.key_marks[part], value[part]
        elif isinstance(value, LocList) and isinstance(part, int) and 0 <= part < len(value):
            best, value = value.item_marks[part], value[part]
        else:
            break
    return best


def to_plain(value: Any) -> Any:
    """A deep copy made of plain dicts and lists (aliases become independent copies)."""
    if isinstance(value, dict):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_plain(item) for item in value]
    return value
