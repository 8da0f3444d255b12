"""`GET /v1/teams/{teamId}/limits`: the plan's limits, in the SDK's `TeamRetrieveLimitsResponse`.

Only `parallelCustomJobs` means anything here: it is the simulator's `max_parallel_jobs`,
the cap its generate enforces, or `UNCAPPED_PARALLEL_CUSTOM_JOBS` when none is set. Every
other figure is a fixed, plausible plan value, there so that the SDK's type parses (all its
fields are required). Any team id is accepted: the simulator has one account. With
`team_limits_readable=False` the endpoint answers 403, as a key without access to its team
might (inferred): a client must then fall back to its own settings.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from runner.simulator.context import CONTEXT, SimContext, iso_ms
from runner.simulator.replies import ApiProblem

UNCAPPED_PARALLEL_CUSTOM_JOBS = 1000
PLAN = "cu-pro"
PLAN_CREATIVE_UNITS = 1_000_000

_FIXED_LIMITS: dict[str, int] = {
    "apiKeys": 10,
    "canvasAssetLayers": 100,
    "canvasAssets": 1000,
    "collections": 1000,
    "defaultSeats": 1,
    "downloadAssets": 1000,
    "downloadModel": 10,
    "inferenceBatchSize": 8,
    "maxTrainingDatasets": 10,
    "models": 1000,
    "OTPSessions": 1,
    "parallelInferences": 16,
    "parallelTraining": 2,
    "parallelWorkflowRuns": 8,
    "premiumGenerationSamples": 0,
    "projects": 100,
    "scalingFactor": 1,
    "seats": 5,
    "snapshotsRetention": 30,
    "upload": 1000,
}


def _period(now_unix: float) -> dict[str, str]:
    """The calendar month (UTC) around `now_unix`, as the billing period."""
    now = datetime.fromtimestamp(now_unix, tz=UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(
        month=start.month + 1)
    return {"start": iso_ms(start.timestamp()), "end": iso_ms(end.timestamp())}


def limits_json(context: SimContext) -> dict[str, Any]:
    """The whole `TeamRetrieveLimitsResponse` body as the simulator stands now."""
    config = context.config
    cap = config.max_parallel_jobs
    limits: dict[str, Any] = {
        **_FIXED_LIMITS,
        "creativeUnits": PLAN_CREATIVE_UNITS,
        # "cooldown applied in case of over head": the unit is not documented; the
        # simulator reports its own 429 delay (seconds) for both and acts on neither.
        "minCooldown": config.retry_after_seconds,
        "maxCooldown": config.retry_after_seconds,
        "parallelCustomJobs": cap if cap is not None else UNCAPPED_PARALLEL_CUSTOM_JOBS,
    }
    values = {"apiKeys": 1, "canvasAssets": 0, "collections": 0, "projects": 1, "seats": 1,
              "creativeUnits": context.stats.creative_units_charged}
    return {"limits": limits, "values": values, "period": _period(context.unix()),
            "plan": PLAN, "oneShotCreativeUnits": []}


async def get_limits(request: web.Request) -> web.Response:
    """GET /v1/teams/{teamId}/limits (any team id)."""
    context = request.app[CONTEXT]
    if not context.config.team_limits_readable:
        raise ApiProblem(403, "This API key is not allowed to read the team's limits.")
    return web.json_response(limits_json(context))


def add_routes(router: web.UrlDispatcher) -> None:
    """Register the team endpoints under /v1."""
    router.add_get("/v1/teams/{teamId}/limits", get_limits)
