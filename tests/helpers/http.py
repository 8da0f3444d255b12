"""Tiny in-process HTTP servers and time fakes for the client, asset and download tests.

`serve(routes)` runs a real aiohttp server on 127.0.0.1 (port 0) whose handlers the test
writes to produce exact fault shapes; every request it sees is recorded, so assertions count
at the server (how many POSTs arrived, which headers reached which origin).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from runner.api import Credentials, Pacer, RetryPolicy, ScenarioClient
from runner.clock import Clock

AUTH = "Basic azpz"  # base64("k:s"), the SDK's own example

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    """A running test server: `url` is its root (no trailing slash); `seen` its requests."""

    url: str
    seen: list[Seen] = field(default_factory=list)

    def count(self, method: str, path: str | None = None) -> int:
        return sum(1 for s in self.seen if s.method == method and path in (None, s.path))


@asynccontextmanager
async def serve(routes: Mapping[tuple[str, str], Handler]) -> AsyncIterator[Server]:
    """Serve `{(METHOD, "/path/{var}"): handler}`, recording every request."""
    server_info = Server(url="")

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.read()
        server_info.seen.append(
            Seen(request.method, request.path, dict(request.query), dict(request.headers), body)
        )
        return await handler(request)

    app = web.Application(middlewares=[record], client_max_size=64 * 1024 * 1024)
    for (method, path), handler in routes.items():
        app.router.add_route(method, path, handler)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    server_info.url = str(server.make_url("")).rstrip("/")
    try:
        yield server_info
    finally:
        await server.close()


def sequence(*handlers: Handler) -> Handler:
    """A handler that answers with the next of `handlers` each time, repeating the last."""
    calls = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        current = handlers[min(calls, len(handlers) - 1)]
        calls += 1
        return await current(request)

    return handler


def respond(
    status: int = 200, body: object = None, headers: dict[str, str] | None = None
) -> Handler:
    """A handler answering `body` as JSON (or nothing when None) with `status` and headers."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if body is None:
            return web.Response(status=status, headers=headers)
        return web.json_response(body, status=status, headers=headers)

    return handler


async def reset(request: web.Request) -> web.StreamResponse:
    """Drop the connection after the request arrived, without any answer."""
    transport = request.transport
    assert transport is not None
    transport.abort()
    raise web.HTTPInternalServerError  # never written: the socket is gone


class FakeTime:
    """A monotonic clock plus a sleep that records delays and advances the clock instantly."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        # The wall clock starts at the real now and then moves only with the fake time.
        self._wall_zero = datetime.now(UTC) - timedelta(seconds=start)

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.0)

    def wall(self) -> datetime:
        """The wall clock, moving with the fake monotonic one."""
        return self._wall_zero + timedelta(seconds=self.now)

    def as_clock(self) -> Clock:
        """This fake time as the one `Clock` that the runner's parts take."""
        return Clock(monotonic=self.clock, wall=self.wall, sleep=self.sleep)


def api_client(
    session: ClientSession, server_url: str, fake_time: FakeTime, **kwargs: Any
) -> ScenarioClient:
    """A ScenarioClient for a test server at `server_url`, on fake time, with Basic k:s."""
    kwargs.setdefault("policy", RetryPolicy(max_attempts=5))
    kwargs.setdefault("pacer", Pacer(fake_time.clock))
    return ScenarioClient(
        session,
        f"{server_url}/v1",
        Credentials(AUTH),
        clock=fake_time.as_clock(),
        random=lambda: 0.0,
        **kwargs,
    )
