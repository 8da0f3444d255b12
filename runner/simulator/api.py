"""The `/v1` API listener: the middleware every request passes, and the app factory.

In order, each request is counted per endpoint, authenticated (401), then exposed to the
request-level faults (reset, 429, 5xx, 408/409, slowness) before its handler runs. A fault is
decided from the request's stable key: the fingerprint for a generate, else method, path,
query and a hash of the body; see `faults.py`. `GET /_sim/stats` is simulator-only: no auth,
no faults, the accounting as JSON.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from aiohttp import web

from runner.simulator import api_assets, api_jobs, api_teams, faults
from runner.simulator.auth import authorized
from runner.simulator.context import CONTEXT, SimContext
from runner.simulator.replies import FAULT_ATTEMPT, FAULT_KEY, ApiProblem, error_response
from runner.simulator.resets import reset_connection
from runner.simulator.stats import request_fingerprint

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_GENERATE_PREFIX = "/v1/generate/custom/"


def _endpoint(request: web.Request) -> str:
    resource = request.match_info.route.resource
    template = resource.canonical if resource is not None else request.path
    return f"{request.method} {template}"


def fault_key(request: web.Request, raw_body: bytes) -> str:
    """The stable key of a request for fault decisions (the fingerprint for a generate)."""
    if request.path.startswith(_GENERATE_PREFIX) and request.method == "POST":
        try:
            body: Any = json.loads(raw_body or b"null")
        except ValueError:
            body = None
        if isinstance(body, dict):
            return request_fingerprint(request.match_info.get("modelId", ""), body)
    digest = hashlib.sha256(raw_body).hexdigest()[:16]
    return f"{request.method} {request.path_qs} {digest}"


async def _apply_faults(request: web.Request, context: SimContext) -> web.StreamResponse | None:
    key = fault_key(request, await request.read())
    attempt = context.state.next_attempt(f"req:{key}")
    request[FAULT_KEY], request[FAULT_ATTEMPT] = key, attempt
    fault = faults.before_request(
        context.rates, context.config.seed, key, attempt, context.config.retry_after_seconds
    )
    if fault is not None:
        context.stats.faults_injected[fault.name] += 1
        if fault.is_reset:
            reset_connection(request)
            return web.Response(status=499)  # never sent: the transport is gone
        return error_response(fault.status or 500, fault.message, fault.headers)
    if context.fires("slow_response", key, attempt):
        await anyio.sleep(context.config.slow_seconds)
    return None


@web.middleware
async def _gatekeeper(request: web.Request, handler: _Handler) -> web.StreamResponse:
    context = request.app[CONTEXT]
    if request.match_info.http_exception is not None:
        exc = request.match_info.http_exception
        return error_response(exc.status, exc.reason)
    if request.path.startswith("/_sim/"):
        return await handler(request)
    context.stats.requests_by_endpoint[_endpoint(request)] += 1
    if not authorized(request.headers.get("Authorization"), context.config):
        return error_response(401, "Unauthorized: send Basic base64(key:secret) or Bearer <token>.")
    if request.method != "GET":
        context.changes += 1  # ids, attempts, jobs, assets, cancels: worth saving
    faulted = await _apply_faults(request, context)
    if faulted is not None:
        return faulted
    try:
        return await handler(request)
    except ApiProblem as problem:
        return error_response(problem.status, problem.message, problem.headers)


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[CONTEXT].stats.to_json())


def build_api_app(context: SimContext) -> web.Application:
    """The aiohttp application of the API listener."""
    app = web.Application(middlewares=[_gatekeeper], client_max_size=64 * 1024**2)
    app[CONTEXT] = context
    app.router.add_get("/_sim/stats", _stats)
    api_jobs.add_routes(app.router)
    api_assets.add_routes(app.router)
    api_teams.add_routes(app.router)
    return app
