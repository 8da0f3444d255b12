"""Build located values from libyaml's event stream, with alias and depth budgets.

See `yaml_source` for why events and not nodes. The builder is a small stack machine: one
frame per open mapping or sequence; a finished value is added to the frame below it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from runner.domain import Problem
from runner.manifest.yaml_source import (
    MAX_ALIAS_NODES,
    MAX_DEPTH,
    LocDict,
    LocList,
    Mark,
    SourceFailure,
    fail,
    location,
)

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # C speed when libyaml is there
_RESOLVER: Any = Resolver()  # untyped in types-PyYAML
_CONSTRUCTOR = SafeConstructor()
_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_CORE}{t}" for t in ("str", "int", "float", "bool", "null")}
# First characters some implicit resolver claims; None (any character) must claim none.
_RESOLVED_STARTS = frozenset(_RESOLVER.yaml_implicit_resolvers)
assert None not in _RESOLVED_STARTS and not _RESOLVER.yaml_path_resolvers

_NO_KEY = object()
_MERGE = object()


@dataclass(slots=True)
class _Frame:
    container: LocDict | LocList
    anchor: str | None
    size: int = 1
    key: Any = _NO_KEY
    key_mark: Mark | None = None
    merges: list[tuple[Any, Mark]] = field(default_factory=list)


class _Builder:
    def __init__(self, file: str, alias_budget: int) -> None:
        self.file = file
        self.alias_budget = alias_budget
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.open_anchors: set[str] = set()
        self.problems: list[Problem] = []
        self.root: Any = None
        self.documents = 0
        self.aliased = False

    def mark(self, event: Any) -> Mark:
        return (self.file, event.start_mark.line + 1, event.start_mark.column + 1)

    def feed(self, event: Any) -> None:
        # One dict look-up per event: libyaml emits the exact event classes.
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    def on_scalar(self, event: Any) -> None:
        value = self.scalar(event)
        if event.anchor is not None:
            self.remember(event.anchor, value, 1)
        self.add(value, event, 1)

    def on_document(self, event: Any) -> None:
        self.documents += 1
        if self.documents > 1:
            raise fail("more than one YAML document", self.mark(event), hint="remove '---'")

    def scalar(self, event: Any) -> Any:
        tag = event.tag
        if tag in (None, "!"):
            value = event.value
            # Quoted text, or plain text whose first character starts no implicit type
            # (bool, int, null, ...), is a str: the resolver would say so, more slowly.
            if not event.implicit[0] or (value and value[0] not in _RESOLVED_STARTS):
                return value
            tag = _RESOLVER.resolve(ScalarNode, value, event.implicit)
        if tag in (f"{_CORE}str", f"{_CORE}timestamp"):
            return event.value  # dates stay text: request bodies are JSON
        if tag == f"{_CORE}merge":
            return _MERGE
        if tag not in _SCALAR_TAGS:
            message = f"unsupported YAML tag {tag!r}"
            self.problems.append(Problem(message, location(self.mark(event)), hint="remove it"))
            return event.value
        try:
            return _CONSTRUCTOR.construct_object(ScalarNode(tag, event.value))
        except (yaml.YAMLError, ValueError):
            message = f"{event.value!r} is not a valid {tag.removeprefix(_CORE)}"
            self.problems.append(Problem(message, location(self.mark(event))))
            return event.value

    def remember(self, anchor: str | None, value: Any, size: int) -> None:
        if anchor is not None:
            self.anchors[anchor] = (value, size)

    def alias(self, event: Any) -> None:
        name = event.anchor
        if name in self.open_anchors:
            raise fail(f"alias *{name} refers to itself", self.mark(event), hint="recursive")
        if name not in self.anchors:
            raise fail(f"alias *{name} has no anchor &{name} before it", self.mark(event))
        value, size = self.anchors[name]
        # The value is shared, not copied; what it *would* expand to is what we budget.
        self.alias_budget -= size
        self.aliased = True
        if self.alias_budget < 0:
            message = f"aliases expand to more than {MAX_ALIAS_NODES:,} nodes"
            hint = "this looks like an alias bomb ('billion laughs'); refusing to expand it"
            raise fail(message, self.mark(event), hint=hint)
        self.add(value, event, size)

    def open(self, event: Any) -> None:
        if len(self.stack) >= MAX_DEPTH:
            raise fail(f"nested deeper than {MAX_DEPTH} levels", self.mark(event))
        is_map = isinstance(event, yaml.MappingStartEvent)
        tag = event.tag
        if tag not in (None, "!", f"{_CORE}{'map' if is_map else 'seq'}"):
            message = f"unsupported YAML tag {tag!r}"
            self.problems.append(Problem(message, location(self.mark(event)), hint="remove it"))
        container = LocDict(self.mark(event)) if is_map else LocList(self.mark(event))
        self.stack.append(_Frame(container, event.anchor))
        if event.anchor is not None:
            self.open_anchors.add(event.anchor)

    def close(self, _event: Any = None) -> None:
        frame = self.stack.pop()
        if isinstance(frame.container, LocDict):
            self.merge(frame.container, frame.merges)
        if frame.anchor is not None:
            self.open_anchors.discard(frame.anchor)
            self.remember(frame.anchor, frame.container, frame.size)
        self.add(frame.container, None, frame.size)

    def add(self, value: Any, event: Any, size: int) -> None:
        if not self.stack:
            self.root = value
            return
        frame = self.stack[-1]
        frame.size += size
        container = frame.container
        mark = value.mark if event is None else self.mark(event)
        if isinstance(container, LocList):
            container.append(value)
            container.item_marks.append(mark)
        elif frame.key is _NO_KEY:
            self.take_key(frame, value, mark)
        else:
            key, frame.key = frame.key, _NO_KEY
            self.put(frame, key, value, frame.key_mark or mark)

    def take_key(self, frame: _Frame, key: Any, mark: Mark) -> None:
        if type(key) is str:
            # 100,000 jobs repeat the same few keys: one copy of each instead of one per job.
            key = sys.intern(key)
        elif isinstance(key, dict | list):
            self.problems.append(Problem("a mapping or list cannot be a key", location(mark)))
            key = f"<complex key at line {mark[1]}>"
        frame.key, frame.key_mark = key, mark

    def put(self, frame: _Frame, key: Any, value: Any, mark: Mark) -> None:
        container = frame.container
        assert isinstance(container, LocDict)
        if key is _MERGE:
            frame.merges.append((value, mark))
        elif key in container:
            first = container.key_marks[key][1]
            message = f"duplicate key {key!r} (first at line {first})"
            hint = "YAML would silently keep only the last one; remove or rename one"
            self.problems.append(Problem(message, location(mark), hint=hint))
        else:
            container[key] = value
            container.key_marks[key] = mark

    def merge(self, target: LocDict, merges: list[tuple[Any, Mark]]) -> None:
        # YAML merge keys: explicit keys win, then earlier sources over later ones.
        for value, mark in merges:
            sources = value if isinstance(value, LocList) else [value]
            for source in sources:
                if not isinstance(source, LocDict):
                    problem = Problem("'<<' needs a mapping or a list of mappings", location(mark))
                    self.problems.append(problem)
                    continue
                for key, item in source.items():
                    if key not in target:
                        target[key] = item
                        target.key_marks[key] = source.key_marks[key]


_HANDLERS: dict[type, Callable[[_Builder, Any], None]] = {
    yaml.ScalarEvent: _Builder.on_scalar,
    yaml.AliasEvent: _Builder.alias,
    yaml.MappingStartEvent: _Builder.open,
    yaml.SequenceStartEvent: _Builder.open,
    yaml.MappingEndEvent: _Builder.close,
    yaml.SequenceEndEvent: _Builder.close,
    yaml.DocumentStartEvent: _Builder.on_document,
}


class Parsed(NamedTuple):
    """A YAML document as located values, its non-fatal problems, and whether an alias made
    two places share one value (else every value has exactly one parent)."""

    root: Any
    problems: list[Problem]
    aliased: bool


def parse_yaml(text: str, file: str) -> Parsed:
    """The located value of a one-document YAML text, and the non-fatal problems found.

    Raises SourceFailure for syntax errors, alias bombs, recursion and excessive nesting.
    """
    builder = _Builder(file, MAX_ALIAS_NODES)
    loader = _Loader(text)
    get_event = loader.get_event
    try:
        while (event := get_event()) is not None:  # None once the stream has ended
            builder.feed(event)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_failure(exc, text, file) from None
    except yaml.reader.ReaderError as exc:
        raise _reader_failure(exc, text, file) from None
    finally:
        loader.dispose()
    return Parsed(builder.root, builder.problems, builder.aliased)


def _syntax_failure(exc: yaml.MarkedYAMLError, text: str, file: str) -> SourceFailure:
    mark = exc.problem_mark or exc.context_mark
    where: Mark = (file, mark.line + 1, mark.column + 1) if mark else (file, 1, 1)
    what = exc.problem or "invalid YAML"
    hint = None
    lines = text.split("\n", where[1])
    if "\t" in lines[min(where[1], len(lines)) - 1][: where[2]]:
        hint = "YAML forbids tabs for indentation: indent with spaces"
    elif exc.context:
        hint = exc.context
    return fail(f"YAML syntax error: {what}", where, hint=hint)


def _reader_failure(exc: yaml.reader.ReaderError, text: str, file: str) -> SourceFailure:
    # libyaml reports a position in characters; turn it into line and column.
    position = min(max(exc.position, 0), len(text))
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    char = exc.character
    code = ord(char) if isinstance(char, str) else int(char)
    what = f"character U+{code:04X} is not allowed in YAML"
    return fail(what, (file, line, column), hint="remove control characters")
