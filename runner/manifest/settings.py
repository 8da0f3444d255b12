"""The manifest's `settings:` block → RunSettings, every bad value a located problem."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from runner.domain import Problem, RunSettings
from runner.manifest.yaml_source import LocDict, Mark, problem
from runner.schemas import suggest

_MAX_FAILURES = re.compile(r"\d+%?")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(value: Any) -> bool:
    return _is_int(value) and value >= 1


def _positive_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and value > 0


def _non_negative_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and value >= 0


def _max_failures(value: Any) -> bool:
    return (_is_int(value) and value >= 0) or (
        isinstance(value, str) and _MAX_FAILURES.fullmatch(value) is not None
    )


# manifest key → (RunSettings field, check, what a good value looks like)
_FIELDS: dict[str, tuple[str, Callable[[Any], bool], str]] = {
    "concurrency": ("concurrency", _positive_int, "a whole number ≥ 1"),
    "submitsPerSecond": ("submits_per_second", _positive_number, "a number > 0"),
    "downloadConcurrency": ("download_concurrency", _positive_int, "a whole number ≥ 1"),
    "jobTimeout": ("job_timeout", _positive_number, "seconds, a number > 0"),
    "maxFailures": ("max_failures", _max_failures, 'a count like 10 or a share like "5%"'),
    "budget": ("budget", _non_negative_number, "compute units, a number ≥ 0"),
}
SETTING_KEYS = (*_FIELDS, "modelConcurrency")


def parse_settings(
    block: Any, models: tuple[str, ...], problems: list[Problem], mark: Mark | None = None
) -> RunSettings:
    """RunSettings from the `settings:` mapping; problems are appended, never raised."""
    if not isinstance(block, LocDict):
        if block is not None and mark is not None:
            hint = "e.g. settings: {concurrency: 4, maxFailures: '10%'}"
            problems.append(problem("settings must be a mapping", mark, path="settings",
                                    hint=hint))
        return RunSettings()
    values: dict[str, Any] = {}
    for key, value in block.items():
        mark = block.key_marks[key]
        path = f"settings.{key}"
        if key == "modelConcurrency":
            values["model_concurrency"] = _model_limits(value, mark, models, problems)
        elif key in _FIELDS:
            name, check, wanted = _FIELDS[key]
            if check(value):
                values[name] = str(value) if name == "max_failures" else value
            else:
                problems.append(problem(f"{value!r} is not valid", mark, path=path, hint=wanted))
        else:
            guess = suggest(str(key), SETTING_KEYS)
            hint = f"did you mean {guess!r}?" if guess else f"known: {', '.join(SETTING_KEYS)}"
            problems.append(problem(f"unknown setting {key!r}", mark, path=path, hint=hint))
    return RunSettings(**values)


def _model_limits(
    value: Any, where: Mark, models: tuple[str, ...], problems: list[Problem]
) -> dict[str, int]:
    path = "settings.modelConcurrency"
    if not isinstance(value, LocDict):
        hint = "a mapping of model id to a whole number ≥ 1"
        problems.append(problem("must be a mapping", where, path=path, hint=hint))
        return {}
    limits = {}
    for model, limit in value.items():
        mark = value.key_marks[model]
        if model not in models:
            guess = suggest(str(model), models)
            known = f"did you mean {guess!r}?" if guess else None
            problems.append(problem(f"unknown model {model!r}", mark, path=path, hint=known))
        elif not _positive_int(limit):
            message, hint = f"{limit!r} is not valid", "a whole number ≥ 1"
            problems.append(problem(message, mark, path=f"{path}.{model}", hint=hint))
        else:
            limits[str(model)] = int(limit)
    return limits
