"""`--budget CU`: each job's dry-run price is reserved before its POST and settled with what
the API reports.

    with budget.reservation(price) as held:   # OverBudget when it would pass the limit
        ...POST...
        held.settle(actual_cost)              # or held.spent() when the job may exist

A reservation that is neither settled nor spent when its block ends (the POST created
nothing, or the block was cancelled) is given back: nothing can leak.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class OverBudget(Exception):
    """The reservation would take spent + reserved past the limit; nothing was reserved."""


class Budget:
    """Creative units: `spent` counts what the API reported, `reserved` what is promised
    to POSTs under way. `limit` None: nothing is refused (the spend is still counted)."""

    def __init__(self, limit: float | None, spent: float = 0.0) -> None:
        self.limit = limit
        self.spent = spent
        self.reserved = 0.0

    @contextmanager
    def reservation(self, price: float) -> Iterator[Reservation]:
        """Reserve `price` CU for the block; raises OverBudget (nothing held) if refused."""
        if self.limit is not None and self.spent + self.reserved + price > self.limit:
            raise OverBudget(
                f"~{price:g} CU would pass the budget of {self.limit:g} "
                f"(spent {self.spent:g}, reserved {self.reserved:g})"
            )
        held = Reservation(self, price)
        self.reserved += price
        try:
            yield held
        finally:
            if held.open:
                held.release()

    def count(self, cost: float | None) -> None:
        """Count a cost that no reservation covered (a job adopted after a crash)."""
        self.spent += cost or 0.0


class Reservation:
    """One held price; closed by exactly one of settle, spent or release."""

    def __init__(self, budget: Budget, price: float) -> None:
        self._budget = budget
        self.price = price
        self.open = True

    def _close(self) -> None:
        if not self.open:
            raise RuntimeError("this reservation is already closed")
        self.open = False
        self._budget.reserved = max(0.0, self._budget.reserved - self.price)

    def settle(self, actual: float | None) -> None:
        """The job exists: count what the API reported (the price when it said nothing)."""
        self._close()
        self._budget.spent += self.price if actual is None else actual

    def spent(self) -> None:
        """The job may exist and its cost is unknown: count the price as spent."""
        self.settle(None)

    def release(self) -> None:
        """Nothing was created: give the price back."""
        self._close()
