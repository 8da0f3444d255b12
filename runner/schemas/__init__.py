"""Model schemas: what each Kling model accepts, so a job is refused before it costs anything.

`SchemaRegistry` (in `registry`) loads `schemas/<modelId>.schema.json` and checks one job's
params: a `compiled` yes/no check passes the valid majority fast, jsonschema's errors become
problems in `wording`, and the `extensions` enforce the `x-` rules JSON Schema cannot express;
`paths` spells field paths (`params.elements[0].frontalImage`) and `suggestions` makes the
did-you-mean guesses the manifest reuses for its own keys.
"""

from __future__ import annotations

from runner.schemas.compiled import validity_check
from runner.schemas.paths import format_path, parse_path
from runner.schemas.registry import AssetInput, SchemaRegistry, default_schema_dir
from runner.schemas.suggestions import suggest

__all__ = [
    "AssetInput",
    "SchemaRegistry",
    "default_schema_dir",
    "format_path",
    "parse_path",
    "suggest",
    "validity_check",
]
