"""What a batch will cost, from the API's dry run (`?dryRun=true`, HTTP 269).

Prices depend on the model and a few params (duration, mode, audio, the driving video), not
on the prompt, so one dry run per distinct price shape prices a whole dataset. The same
cache reserves each job's cost against `--budget` before its POST.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from runner.api import ScenarioClient
from runner.batch.bodies import AssetSource, request_body
from runner.domain import JobSpec
from runner.schemas import SchemaRegistry

PRICE_KEYS = ("duration", "mode", "generateAudio", "video", "multiPrompt")


def price_key(model: str, body: Mapping[str, Any]) -> str:
    """What a dry-run price is cached under: the model and the params that change it."""
    return repr((model, [repr(body.get(k)) for k in PRICE_KEYS]))


class CostEstimator:
    """Dry-run prices cached per price shape; `dry_runs` counts the requests made."""

    def __init__(self, client: ScenarioClient) -> None:
        self._client = client
        self._cache: dict[str, float] = {}
        self._locks: dict[str, anyio.Lock] = {}
        self.dry_runs = 0

    async def __call__(self, model: str, body: Mapping[str, Any]) -> float:
        key = price_key(model, body)
        # One lock per shape: concurrent jobs of one shape share a single dry run.
        async with self._locks.setdefault(key, anyio.Lock()):
            if key not in self._cache:
                self._cache[key] = await self._client.estimate(model, body)
                self.dry_runs += 1
        return self._cache[key]


@dataclass(frozen=True, slots=True)
class Estimate:
    """Creative units per job, per model and in total."""

    per_job: Mapping[str, float]
    per_model: Mapping[str, float]
    total: float
    dry_runs: int


async def estimate_jobs(
    specs: Sequence[JobSpec], registry: SchemaRegistry, client: ScenarioClient,
    assets: AssetSource,
) -> Estimate:
    """Price every job (uploading its local files once, as `run` would)."""
    estimator = CostEstimator(client)
    per_job: dict[str, float] = {}
    per_model: dict[str, float] = defaultdict(float)
    for spec in specs:
        body = await request_body(spec, registry, assets)
        cost = await estimator(spec.model, body)
        per_job[spec.id] = cost
        per_model[spec.model] += cost
    return Estimate(per_job, dict(per_model), sum(per_job.values()), estimator.dry_runs)
