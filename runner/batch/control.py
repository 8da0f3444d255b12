"""Reasons to stop submitting on purpose, as small pure state objects.

A halted run drains (jobs already at the API are still polled and downloaded) and exits 3;
re-running it resumes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from runner.errors import UsageError


class HaltReason(enum.Enum):
    """Why submissions stopped before the manifest was exhausted."""

    AUTH = "the API refused the credentials"
    CREDIT = "the account is out of credits or over quota"
    FAILURES = "too many jobs failed"
    BUDGET = "the next job would pass the budget"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True, slots=True)
class FailureLimit:
    """`--max-failures N` or `N%` (of the jobs this run handles)."""

    count: int | None = None
    percent: float | None = None

    @classmethod
    def parse(cls, text: str | None) -> FailureLimit:
        """'5' or '10%'; raises UsageError otherwise. None: no limit."""
        if text is None:
            return cls()
        raw = text.strip()
        try:
            if raw.endswith("%"):
                value = float(raw[:-1])
                if not 0 < value <= 100:
                    raise ValueError(raw)
                return cls(percent=value)
            count = int(raw)
            if count < 1:
                raise ValueError(raw)
            return cls(count=count)
        except ValueError:
            raise UsageError(
                f"--max-failures {text!r} is not a count or a percentage",
                hint="write e.g. --max-failures 10 or --max-failures 5%",
            ) from None

    def reached(self, failures: int, total: int) -> bool:
        """True once `failures` passes the limit for a run of `total` jobs."""
        if self.count is not None and failures >= self.count:
            return True
        return self.percent is not None and total > 0 and failures * 100 >= self.percent * total


class Budget:
    """Creative units: reserve an estimate before each POST, settle with the real cost.

    `spent` counts what the API reported; `reserved` what is promised to POSTs under way.
    A reservation is refused when it would take spent + reserved past the limit.
    """

    def __init__(self, limit: float | None, spent: float = 0.0) -> None:
        self.limit = limit
        self.spent = spent
        self.reserved = 0.0

    def try_reserve(self, estimate: float) -> bool:
        """Reserve `estimate` CU; False (nothing reserved) when it would pass the limit."""
        if self.limit is not None and self.spent + self.reserved + estimate > self.limit:
            return False
        self.reserved += estimate
        return True

    def settle(self, estimate: float, actual: float | None) -> None:
        """Replace a reservation with the cost the API reported (the estimate if none)."""
        self.reserved = max(0.0, self.reserved - estimate)
        self.spent += estimate if actual is None else actual

    def release(self, estimate: float) -> None:
        """Give back a reservation whose POST created nothing."""
        self.reserved = max(0.0, self.reserved - estimate)
