"""Small helpers every handler uses: JSON error answers and JSON request bodies."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

# Keys under which the middleware leaves the request's fault key and attempt number, so a
# handler can decide the faults that only make sense after it acted (after_create).
FAULT_KEY: web.RequestKey[str] = web.RequestKey("sim_fault_key", str)
FAULT_ATTEMPT: web.RequestKey[int] = web.RequestKey("sim_fault_attempt", int)


class ApiProblem(Exception):
    """Raised inside a handler to answer `status` with {"message": message}."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """The API's error shape: a JSON object with a `message`."""
    return web.json_response({"message": message}, status=status, headers=dict(headers or {}))


async def json_body(request: web.Request, *, required: bool = True) -> Any:
    """The request's JSON body; ApiProblem 400 when it is missing or not JSON."""
    raw = await request.read()
    if not raw:
        if required:
            raise ApiProblem(400, "A JSON body is required.")
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ApiProblem(400, f"The body is not valid JSON: {exc}") from exc


async def json_object(request: web.Request, *, required: bool = True) -> dict[str, Any]:
    """The request's JSON body, which must be an object."""
    body = await json_body(request, required=required)
    if not isinstance(body, dict):
        raise ApiProblem(400, "The body must be a JSON object.")
    return body
