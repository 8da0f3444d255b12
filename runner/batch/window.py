"""How many jobs the account will hold: an AIMD window, as TCP's congestion window.

The plan's parallel-job cap (`parallelCustomJobs`) is rarely known to the user, and the
API answers a generate POST beyond it with a 429 that created nothing. So admission keeps a
window of places that it learns:

- **slow start**: until the first refusal the window grows by one place per accepted POST
  (it doubles every round), from a few places up to `--concurrency`;
- **multiplicative decrease**: a refusal shrinks it to the jobs the account holds now (it
  just said it will not take one more) — once a second refusal comes at about the same
  level: a 429 can also be a passing rate limit, which refuses at any level, while a cap
  refuses again and again at its own (a lone refusal only pauses new POSTs, as its
  Retry-After asks);
- **additive increase**: after a refusal, one more place per window's worth of accepted
  POSTs — it probes the cap about once per window, so refusals stay near 1/cap per job.

It never exceeds `--concurrency` and never goes below one place. Pure state, table-tested.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

SLOW_START = 4  # places before anything is known (the plan's cap, when readable, replaces it)


@dataclass(frozen=True, slots=True)
class Window:
    """`size` may be fractional between refusals; `limit` is the places it allows."""

    ceiling: int
    size: float = SLOW_START
    refused: int = 0  # refusals so far
    additive: bool = False  # past slow start: the cap is known or was met
    suspect: int | None = None  # jobs in flight at the last refusal not yet confirmed

    @property
    def limit(self) -> int:
        return max(1, min(self.ceiling, int(self.size)))

    @property
    def capped(self) -> bool:
        """True when the account's cap, not `--concurrency`, holds the batch back."""
        return self.additive and self.limit < self.ceiling


def opening_window(ceiling: int, plan_cap: int | None = None) -> Window:
    """The window a run starts with: the plan's cap when the API told it, else slow start.

    A known cap still grows additively (a plan can change during the night)."""
    if plan_cap is not None and plan_cap > 0:
        return Window(ceiling, float(min(ceiling, plan_cap)), additive=True)
    return Window(ceiling, float(min(ceiling, SLOW_START)))


def after_refusal(window: Window, in_flight: int) -> Window:
    """The account refused one more job while it held `in_flight`: shrink to that when an
    earlier refusal came at about the same level (a cap), else remember the level."""
    refused = window.refused + 1
    if window.suspect is None or not _same_level(window.suspect, in_flight):
        return replace(window, refused=refused, suspect=in_flight)
    return replace(window, size=float(max(1, min(in_flight, window.limit))), refused=refused,
                   additive=True, suspect=None)


def _same_level(before: int, now: int) -> bool:
    return abs(before - now) <= max(1, before // 10)


def after_acceptance(window: Window) -> Window:
    """A generate POST was accepted (a job created)."""
    if window.size >= window.ceiling:
        return window
    step = 1.0 / max(1.0, window.size) if window.additive else 1.0
    return replace(window, size=min(float(window.ceiling), window.size + step))
