"""kling-batch: turn a YAML manifest of Kling video requests into verified videos and a ledger."""

from __future__ import annotations

__version__ = "0.1.0"
