"""`DIR/provenance.json`: where a batch came from, so its dataset can be rebuilt and cited.

`run` rewrites it (atomically) each time it starts: the manifest's path and sha256, the
sha256 of the expanded plan (`plan.jsonl`: what the manifest's templates, prompt files and
defaults became), the kling-batch version, the sha256 of each model schema file the batch
uses, and the `--concurrency` and `--budget` the run was given. The dataset card and the
report read it; a folder without one (made by an older version) simply says less.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runner.outdir.files import write_atomically

PROVENANCE_NAME = "provenance.json"


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """The provenance of a batch, as its last run started it."""

    manifest: str
    manifest_sha256: str
    plan_sha256: str
    version: str
    started: str
    schemas: Mapping[str, str] = field(default_factory=dict)  # model -> schema file sha256
    concurrency: int | None = None
    budget: float | None = None


def write_batch_record(directory: Path, record: BatchRecord) -> None:
    """Rewrite DIR/provenance.json from `record`."""
    text = json.dumps(asdict(record), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    write_atomically(directory / PROVENANCE_NAME, [text.encode("utf-8")])


def _optional(data: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = data.get(name)
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


def read_batch_record(directory: Path) -> BatchRecord | None:
    """DIR/provenance.json, or None when there is none or it does not parse (a hand edit)."""
    try:
        data = json.loads((directory / PROVENANCE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    texts = {name: data.get(name) for name in
             ("manifest", "manifest_sha256", "plan_sha256", "version", "started")}  # fmt: skip
    if not all(isinstance(value, str) for value in texts.values()):
        return None
    schemas = data.get("schemas")
    budget = _optional(data, "budget", (int, float))
    return BatchRecord(
        **texts,  # type: ignore[arg-type]
        schemas={str(k): str(v) for k, v in schemas.items()} if isinstance(schemas, dict) else {},
        concurrency=_optional(data, "concurrency", int),
        budget=None if budget is None else float(budget),
    )
