"""Handlers for generation and jobs: generate, retrieve, list and cancel."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from runner.simulator import billing, faults, listing
from runner.simulator.catalog import ASSET_ID, ModelSchema, id_like_strings
from runner.simulator.context import CONTEXT, SimContext
from runner.simulator.replies import FAULT_ATTEMPT, FAULT_KEY, ApiProblem, json_object
from runner.simulator.resets import reset_connection
from runner.simulator.state import Asset, Job
from runner.simulator.stats import request_fingerprint
from runner.simulator.wire import job_json

CREDITS_MESSAGE = "Not enough creative units to run this generation: the account has run out."
CAP_MESSAGE = "Too many custom jobs in progress for this account: wait for some to finish."


def _check_assets(context: SimContext, model: ModelSchema, body: dict[str, Any]) -> None:
    for value in sorted(model.asset_values(body) | set(id_like_strings(body))):
        if not ASSET_ID.match(value):
            raise ApiProblem(400, f"{value!r} is not an asset id: upload the file first "
                                  "(POST /v1/assets or /v1/uploads) and pass its asset_… id.")
        if value not in context.state.assets:
            raise ApiProblem(400, f"Asset {value} not found.")


def retry_hints(delay: float) -> dict[str, str]:
    """Both delay hints the SDK reads: `retry-after-ms` (read first, exact) and `retry-after`
    in whole seconds, HTTP's own form (rounded up, at least 1)."""
    return {"retry-after": str(max(1, math.ceil(delay))),
            "retry-after-ms": str(max(1, round(delay * 1000)))}


def _check_capacity(context: SimContext) -> None:
    limit = context.config.credit_limit
    if limit is not None and context.state.created_jobs >= limit:
        raise ApiProblem(402, CREDITS_MESSAGE)
    cap = context.config.max_parallel_jobs
    if cap is not None and context.stats.jobs_in_flight >= cap:
        # Beyond the cap nothing is created or billed: the client is told to come back later,
        # like any other 429 (docs/simulator.md says what of this is inferred).
        context.stats.cap_refusals += 1
        raise ApiProblem(429, CAP_MESSAGE, retry_hints(context.config.retry_after_seconds))


def _output_source(body: dict[str, Any]) -> str:
    if "video" in body:
        return "video2video"
    return "img2video" if any(id_like_strings(body)) else "txt2video"


def _create_job(
    context: SimContext, model_id: str, fingerprint: str, body: dict[str, Any], cost: int
) -> Job:
    state, config = context.state, context.config
    job_id = state.new_id("job", fingerprint)
    outcome = faults.job_outcome(context.rates, config.seed, job_id)
    if outcome is not faults.Outcome.SUCCESS:
        context.stats.faults_injected[f"job:{outcome.value}"] += 1
    now = context.clock()
    count = faults.asset_count(config.seed, job_id, config.assets_per_job)
    asset_ids = tuple(state.new_id("asset", job_id) for _ in range(count))
    for index, asset_id in enumerate(asset_ids):
        state.assets[asset_id] = Asset(
            asset_id, "video", "video/mp4", f"{job_id}_{index}.mp4", _output_source(body),
            now, parent_job_id=job_id, model_id=model_id,
        )
    duration = faults.job_duration(config.seed, job_id, config.job_seconds)
    job = Job(job_id, model_id, fingerprint, body, now, duration, outcome, asset_ids, cost,
              seq=state.created_jobs + 1)
    state.add_job(job)
    context.stats.job_created(fingerprint, cost)
    return job


def _cost_reply(cost: int) -> dict[str, Any]:
    return {"creativeUnitsCost": cost, "creativeUnitsDiscount": 0,
            "costDetails": {"custom-generation": cost}}


async def generate(request: web.Request) -> web.StreamResponse:
    """POST /v1/generate/custom/{modelId}: validate, then create a job (or price it)."""
    context = request.app[CONTEXT]
    model_id = request.match_info["modelId"]
    model = context.catalog.get(model_id)
    if model is None:
        raise ApiProblem(404, f"Model {model_id} not found.")
    body = await json_object(request)
    problem = model.first_error(body)
    if problem is not None:
        raise ApiProblem(400, problem)
    _check_assets(context, model, body)
    seconds = billing.video_seconds(
        model_id, body, _asset_duration(context), context.config.assumed_video_seconds
    )
    cost = billing.cost(model_id, seconds)
    if request.query.get("dryRun") in ("true", "api"):
        context.stats.dry_runs += 1
        return web.json_response(_cost_reply(cost), status=269)
    fingerprint = request_fingerprint(model_id, body)
    context.stats.generate_attempts_by_fingerprint[fingerprint] += 1
    _check_capacity(context)
    job = _create_job(context, model_id, fingerprint, body, cost)
    hidden = faults.after_create(
        context.rates, context.config.seed, request[FAULT_KEY], request[FAULT_ATTEMPT]
    )
    if hidden is not None:
        context.stats.faults_injected[hidden.name] += 1
        if hidden.is_reset:
            reset_connection(request)
            return web.Response(status=499)  # never sent: the transport is gone
        return web.json_response({"message": hidden.message}, status=hidden.status or 500,
                                 headers=dict(hidden.headers))
    return web.json_response({"job": job_json(context, job), **_cost_reply(cost)})


def _asset_duration(context: SimContext) -> Any:
    def duration(asset_id: str) -> float | None:
        asset = context.state.assets.get(asset_id)
        return asset.duration if asset is not None else None

    return duration


def _job(context: SimContext, job_id: str) -> Job:
    job = context.state.jobs.get(job_id)
    if job is None:
        raise ApiProblem(404, f"Job {job_id} not found.")
    return job


async def get_job(request: web.Request) -> web.Response:
    """GET /v1/jobs/{jobId}."""
    context = request.app[CONTEXT]
    return web.json_response({"job": job_json(context, _job(context, request.match_info["jobId"]))})


async def list_jobs(request: web.Request) -> web.Response:
    """GET /v1/jobs: filters, newest first, keyset cursor, sometimes an empty page."""
    context = request.app[CONTEXT]
    try:
        query = listing.parse_query(request.query)
    except listing.QueryError as exc:
        raise ApiProblem(400, str(exc)) from exc
    now = context.clock()
    empty = context.fires("empty_page", request[FAULT_KEY], request[FAULT_ATTEMPT])
    by_seq: dict[int, Job] = {}
    seqs, token = listing.paginate(_listed(context, query, now, by_seq), query, empty)
    reply: dict[str, Any] = {"jobs": [job_json(context, by_seq[seq]) for seq in seqs]}
    if token is not None:
        reply["nextPaginationToken"] = token
    return web.json_response(reply)


def _listed(
    context: SimContext, query: listing.ListQuery, now: float, seen: dict[int, Job]
) -> Iterator[listing.Listed]:
    """The jobs as the filters see them at `now`, newest first, from the query's cursor on,
    until no older job can pass the date filters; each one read is also put in `seen`."""
    for entry in context.state.newest_first(query.before_seq):
        bounds = context.unix(entry.created_bound), context.unix(entry.update_bound)
        if not listing.older_may_match(query, *bounds):
            return
        job = entry.job
        seen[job.seq] = job
        snap = job.snapshot(now)
        yield listing.Listed(job.seq, snap.status, "custom", context.unix(job.created),
                             context.unix(job.created + snap.updated))


async def job_action(request: web.Request) -> web.Response:
    """POST /v1/jobs/{jobId}/action {"action": "cancel"}."""
    context = request.app[CONTEXT]
    job = _job(context, request.match_info["jobId"])
    body = await json_object(request, required=False)
    if body.get("action") != "cancel":
        raise ApiProblem(400, f"Unsupported action {body.get('action')!r}: only 'cancel' exists.")
    snap = job.snapshot(context.clock())
    if snap.terminal:
        raise ApiProblem(400, f"Job {job.job_id} is already {snap.status}: it cannot be canceled.")
    refused = context.fires("cancel_refused", job.job_id, request[FAULT_ATTEMPT])
    if not context.config.cancel_custom_jobs or refused:
        raise ApiProblem(400, "Today only cancel on inference jobs is supported.")
    job.canceled_at = context.clock() - job.created
    return web.json_response({"job": job_json(context, job)})


def add_routes(router: web.UrlDispatcher) -> None:
    """Register the job endpoints under /v1."""
    router.add_post("/v1/generate/custom/{modelId}", generate)
    router.add_get("/v1/jobs", list_jobs)
    router.add_get("/v1/jobs/{jobId}", get_job)
    router.add_post("/v1/jobs/{jobId}/action", job_action)
