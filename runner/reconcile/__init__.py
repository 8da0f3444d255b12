"""Reconciliation: a POST whose answer was lost is matched to the job the API created
(`matching`, pure) before anything is posted again (`reconciler`, the async shell)."""

from runner.reconcile.matching import (
    CLOCK_SKEW,
    Intent,
    ambiguous_intents,
    body_fingerprint,
    listing_start,
    match_intents,
)
from runner.reconcile.reconciler import Held, Reconciler

__all__ = [
    "CLOCK_SKEW",
    "Held",
    "Intent",
    "Reconciler",
    "ambiguous_intents",
    "body_fingerprint",
    "listing_start",
    "match_intents",
]
