"""Run settings, checked one way: the manifest's `settings:` block and `run`'s flags.

Each setting is one row of `SETTINGS`: its manifest key, its flag, the `RunSettings` field
it fills and the check its value must pass. `parse_settings` applies the checks to the
YAML block (every bad value a located problem, at `validate` time as at `run` time);
`flag_value` applies the same checks to a flag's text, so `--budget nan` is refused the way
`budget: .nan` is, and neither error names a source the user did not write. Numbers must
be finite; counts and durations positive (`autoRetries` may be 0: no new attempts).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from runner.domain import Problem, RunSettings
from runner.errors import UsageError
from runner.manifest.yaml_source import LocDict, Mark, problem
from runner.schemas import suggest

_COUNT = re.compile(r"\s*(\d+)\s*")
_SHARE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*%\s*")
POLL_MODES = ("list", "each")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def positive_int(value: Any) -> int:
    """A whole number ≥ 1; ValueError otherwise."""
    if not _is_int(value) or value < 1:
        raise ValueError(value)
    return int(value)


def _count(value: Any) -> int:
    if not _is_int(value) or value < 0:
        raise ValueError(value)
    return int(value)


def _positive_number(value: Any) -> float:
    if not _is_number(value) or value <= 0:
        raise ValueError(value)
    return float(value) if isinstance(value, float) else value


def _poll_mode(value: Any) -> str:
    if value not in POLL_MODES:
        raise ValueError(value)
    return str(value)


def max_failures(value: Any) -> tuple[int | None, float | None]:
    """`maxFailures` as (count, percent): a count ≥ 1 (10 or "10") or a share of the jobs
    above 0 and at most 100 ("5%", "0.5%"); ValueError otherwise."""
    if _is_int(value):
        return positive_int(value), None
    if isinstance(value, str):
        if (count := _COUNT.fullmatch(value)) is not None:
            return positive_int(int(count.group(1))), None
        if (share := _SHARE.fullmatch(value)) is not None:
            percent = float(share.group(1))
            if 0 < percent <= 100:
                return None, percent
    raise ValueError(value)


def _max_failures_text(value: Any) -> str:
    count, percent = max_failures(value)
    return f"{count}" if count is not None else f"{percent:g}%"


def _command(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(value)
    return value


def _http_url(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"https?://[^\s/?#]+\S*", value):
        raise ValueError(value)
    return value


def _int_text(text: str) -> Any:
    return int(text.strip()) if re.fullmatch(r"\s*[+-]?\d+\s*", text) else text


def _number_text(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def _as_is(text: str) -> Any:
    return text


@dataclass(frozen=True, slots=True)
class Setting:
    """One run setting: where it is written (manifest key, flag) and what it accepts.

    `check` turns a typed value (YAML's) into the setting's value or raises ValueError;
    `from_text` turns a flag's text into the typed value `check` then judges. `key` is None
    for a flag the manifest cannot set.
    """

    key: str | None
    flag: str
    field: str
    check: Callable[[Any], Any]
    wanted: str
    from_text: Callable[[str], Any] = _as_is
    secret: bool = False  # its value may hold a token: never quoted in a message


_WHOLE = "a whole number ≥ 1"
SETTINGS: tuple[Setting, ...] = (
    Setting("concurrency", "--concurrency", "concurrency", positive_int, _WHOLE, _int_text),
    Setting("submitsPerSecond", "--submit-rate", "submits_per_second", _positive_number,
            "a number > 0", _number_text),
    Setting("downloadConcurrency", "--download-concurrency", "download_concurrency",
            positive_int, _WHOLE, _int_text),
    Setting("jobTimeout", "--job-timeout", "job_timeout", _positive_number,
            "seconds, a number > 0", _number_text),
    Setting("pollMode", "--poll-mode", "poll_mode", _poll_mode, "list or each"),
    Setting("maxFailures", "--max-failures", "max_failures", _max_failures_text,
            'a count like 10 or a share like "5%" (above 0, at most 100%)'),
    Setting("budget", "--budget", "budget", _positive_number,
            "compute units, a number > 0", _number_text),
    Setting("autoRetries", "--auto-retries", "auto_retries", _count,
            "a whole number ≥ 0 (0: no automatic new attempts)", _int_text),
    Setting("settle", "--settle", "settle", _positive_number, "seconds, a number > 0",
            _number_text),
    Setting("confirmAbove", "--confirm-above", "confirm_above", _positive_number,
            "compute units, a number > 0", _number_text),
    Setting("notifyCommand", "--notify-command", "notify_command", _command,
            "a shell command (its stdin gets the summary as JSON)"),
    Setting("notifyUrl", "--notify-url", "notify_url", _http_url,
            "an http:// or https:// URL (it is POSTed the summary as JSON)", secret=True),
    Setting(None, "--poll-interval", "poll_interval", _positive_number,
            "seconds, a number > 0", _number_text),
    Setting(None, "--poll-max", "poll_max", _positive_number, "seconds, a number > 0",
            _number_text),
    Setting(None, "--lost-grace", "lost_grace", _positive_number, "seconds, a number > 0",
            _number_text),
    Setting(None, "--listings-per-second", "listings_per_second", _positive_number,
            "listings a second, a number > 0", _number_text),
)
_BY_KEY = {s.key: s for s in SETTINGS if s.key is not None}
_BY_FLAG = {s.flag: s for s in SETTINGS}
SETTING_KEYS = (*_BY_KEY, "modelConcurrency")


def flag_value(flag: str, text: str | None) -> Any:
    """The value of `flag` given as `text` (None: not given), checked as its setting is.

    Raises UsageError naming the flag and what a good value looks like.
    """
    if text is None:
        return None
    setting = _BY_FLAG[flag]
    try:
        return setting.check(setting.from_text(text))
    except ValueError:
        shown = "(value hidden)" if setting.secret else repr(text)
        raise UsageError(f"{flag} {shown} is not valid", hint=setting.wanted) from None


def model_limit_problem(model: str, limit: Any, models: Sequence[str]) -> tuple[str, str] | None:
    """(message, hint) when `model: limit` is not a per-model limit, else None."""
    if model not in models:
        guess = suggest(model, tuple(models))
        hint = f"did you mean {guess!r}?" if guess else f"known models: {', '.join(models)}"
        return f"unknown model {model!r}", hint
    try:
        positive_int(limit)
    except ValueError:
        return f"{limit!r} is not valid", _WHOLE
    return None


def model_limit_flag(text: str, models: Sequence[str]) -> tuple[str, int]:
    """`--model-concurrency MODEL=N` as (model, N); UsageError (with a did-you-mean)."""
    model, sep, count = text.partition("=")
    model = model.strip()
    limit = _int_text(count)
    if not sep or not model:
        raise UsageError(f"--model-concurrency {text!r} is not MODEL=N",
                         hint="e.g. --model-concurrency model_kling-v3-t2v-4k=2")
    issue = model_limit_problem(model, limit, models)
    if issue is not None:
        raise UsageError(f"--model-concurrency {text!r}: {issue[0]}", hint=issue[1])
    return model, int(limit)


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
        where = block.key_marks[key]
        path = f"settings.{key}"
        if key == "modelConcurrency":
            values["model_concurrency"] = _model_limits(value, where, models, problems)
        elif key in _BY_KEY:
            setting = _BY_KEY[key]
            try:
                values[setting.field] = setting.check(value)
            except ValueError:
                shown = "the value" if setting.secret else repr(value)
                problems.append(problem(f"{shown} is not valid", where, path=path,
                                        hint=setting.wanted))
        else:
            guess = suggest(str(key), SETTING_KEYS)
            hint = f"did you mean {guess!r}?" if guess else f"known: {', '.join(SETTING_KEYS)}"
            problems.append(problem(f"unknown setting {key!r}", where, path=path, hint=hint))
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
        issue = model_limit_problem(str(model), limit, models)
        if issue is None:
            limits[str(model)] = int(limit)
            continue
        at = path if str(model) not in models else f"{path}.{model}"
        problems.append(problem(issue[0], mark, path=at, hint=issue[1]))
    return limits
