"""The one JSON spelling of a request body: content ids, fingerprints and reconciliation
all hash or compare this text, so they agree on what "the same request" means."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def _normal(value: Any) -> Any:
    # Numbers by value: an API that echoes 1.0 as 1 (or the reverse) must still match.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normal(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    """Keys sorted, compact, UTF-8 text, integral floats written as integers."""
    return json.dumps(_normal(value), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)
