"""Pure summaries of a manifest for `plan`: jobs per model and seconds of video asked for."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runner.domain import JobSpec
from runner.manifest import Manifest
from runner.schemas import SchemaRegistry


@dataclass(frozen=True, slots=True)
class PlanSummary:
    """What a manifest asks for. `unknown_length` counts jobs whose length comes from a
    driving video (motion control), which only the API knows."""

    jobs: int
    per_model: Mapping[str, int]
    seconds_per_model: Mapping[str, int]
    total_seconds: int
    unknown_length: int


@functools.cache
def _default_registry() -> SchemaRegistry:
    # Only for callers that hold no registry; loading the schemas once is enough.
    return SchemaRegistry.load()


def video_seconds(
    model: str | None, params: Mapping[str, Any], registry: SchemaRegistry | None = None
) -> int | None:
    """Seconds of video a job asks for: its `duration`, else the model schema's default.

    None when the model takes its length from a driving video (no `duration` parameter), or
    is not a model the schemas know. The one rule `plan`, `status` and `report` count by.
    """
    duration = params.get("duration")
    if duration is None:
        schemas = registry or _default_registry()
        if model is None or model not in schemas.models:
            return None
        duration = schemas.schema(model).get("properties", {}).get("duration", {}).get("default")
    text = str(duration)
    return int(text) if text.isdigit() else None


def job_seconds(spec: JobSpec, registry: SchemaRegistry | None = None) -> int | None:
    """Seconds of video a manifest job asks for (`video_seconds` of its model and params)."""
    return video_seconds(spec.model, spec.params, registry)


def summarize_plan(manifest: Manifest, registry: SchemaRegistry | None = None) -> PlanSummary:
    """Counts per model, total seconds and jobs of unknown length, in manifest order."""
    per_model: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    unknown = 0
    for spec in manifest.jobs:
        per_model[spec.model] += 1
        length = job_seconds(spec, registry)
        if length is None:
            unknown += 1
        else:
            seconds[spec.model] += length
    return PlanSummary(
        jobs=len(manifest.jobs),
        per_model=dict(per_model),
        seconds_per_model=dict(seconds),
        total_seconds=sum(seconds.values()),
        unknown_length=unknown,
    )
