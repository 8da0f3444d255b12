"""Did-you-mean guesses, so a misspelt key, model or parameter comes back with its fix.

Manifest keys, settings, model ids and schema parameters all guess the same way, so a user
who learns that `start_image` finds `startImage` can count on it everywhere.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator


def suggest(word: str, options: Iterator[str] | tuple[str, ...] | list[str]) -> str | None:
    """The option `word` most likely meant: same letters ignoring case and `_-`, else close."""
    choices = list(options)
    folded = {re.sub(r"[_\-\s]", "", c).lower(): c for c in choices}
    exact = folded.get(re.sub(r"[_\-\s]", "", word).lower())
    if exact is not None:
        return exact
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return close[0] if close else None
