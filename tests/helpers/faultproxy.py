"""A fault-injecting HTTP reverse proxy, for putting faults between a client and a real
server (moto's S3, the simulator) without touching either.

    async with start_fault_proxy(moto.endpoint) as proxy:
        proxy.add(FaultRule(Fault.SLOW_DOWN, method="PUT", query="partNumber", times=2))
        ... point the client at proxy.url ...
        assert proxy.fired and all(r.fault is Fault.SLOW_DOWN for r, _ in proxy.fired)

Every request is forwarded as received (method, path, query, headers, body) unless a rule
matches it: `SLOW_DOWN` answers 503 with S3's SlowDown error, `RESET` drops the connection
without an answer (after reading the request: its effect upstream is unknown to the client
only in `RESET_AFTER`, which forwards first and then drops), `CORRUPT` flips one byte of
the request body before forwarding, `STALL` holds the request unanswered until
`unstall()`. A rule fires on the matching requests after the first
`after` of them, `times` times (0: on every one); every rule counts every request it
matches, and when several are due the first added fires. `seen` records every request the proxy
received (headers included, so a test can tell which credentials reached which server),
`fired` the (rule, request) pairs that were faulted.

For tests that drive real processes from synchronous code, `background_fault_proxy` runs
the same proxy on an event loop in another thread. Rules may be added while it runs.
"""

from __future__ import annotations

import enum
import io
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

import aiohttp
import anyio
import anyio.from_thread
from aiohttp import web
from aiohttp.test_utils import TestServer

_HOP = frozenset({"host", "content-length", "transfer-encoding", "connection", "keep-alive"})
SLOW_DOWN_XML = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
                 b"<Message>Please reduce your request rate.</Message></Error>")


class Fault(enum.Enum):
    """What a rule does to a matching request."""

    SLOW_DOWN = "503 SlowDown, not forwarded"
    RESET = "connection dropped before forwarding"
    RESET_AFTER = "forwarded, then the connection dropped instead of the answer"
    CORRUPT = "one byte of the body flipped, then forwarded"
    STALL = "held, unanswered, until `unstall()` (a hung server); then forwarded"


@dataclass(frozen=True)
class Proxied:
    """One request as the proxy received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    size: int


@dataclass
class FaultRule:
    """Fault the requests that match every given field: `method`, `path_contains` (a
    substring of the path), `query` (a query parameter present, e.g. `partNumber` for
    UploadPart, `uploadId` for the multipart steps)."""

    fault: Fault
    method: str | None = None
    path_contains: str = ""
    query: str | None = None
    times: int = 1
    after: int = 0
    matched: int = 0  # matching requests seen so far (the proxy counts)

    def matches(self, request: Proxied) -> bool:
        return ((self.method is None or request.method == self.method)
                and self.path_contains in request.path
                and (self.query is None or self.query in request.query))

    def take(self, request: Proxied) -> bool:
        """Count a request; True when this one is to be faulted."""
        if not self.matches(request):
            return False
        self.matched += 1
        nth = self.matched - self.after
        return nth >= 1 and (self.times == 0 or nth <= self.times)


@dataclass
class FaultProxy:
    """A running proxy: `url` is its root (no trailing slash)."""

    url: str
    upstream: str
    rules: list[FaultRule] = field(default_factory=list)
    seen: list[Proxied] = field(default_factory=list)
    fired: list[tuple[FaultRule, Proxied]] = field(default_factory=list)
    stalled: int = 0  # requests held by STALL now
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _released: anyio.Event = field(default_factory=anyio.Event)
    _stall_changed: anyio.Condition = field(default_factory=anyio.Condition)

    async def wait_stalled(self, count: int) -> None:
        """Return once `count` requests are held by STALL (from the proxy's event loop)."""
        async with self._stall_changed:
            while self.stalled < count:
                await self._stall_changed.wait()

    def unstall(self) -> None:
        """Let every stalled request through, and those to come (from the proxy's event
        loop: in an async test, or through the portal of `background_fault_proxy`)."""
        self._released.set()

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Drop every rule (the record of what was seen and fired stays)."""
        with self._lock:
            self.rules.clear()

    def _fault_for(self, request: Proxied) -> FaultRule | None:
        with self._lock:
            self.seen.append(request)
            # Every rule counts every request it matches; the first one due fires.
            due = [rule for rule in self.rules if rule.take(request)]
            if due:
                self.fired.append((due[0], request))
                return due[0]
        return None


def _flip(body: bytes) -> bytes:
    if not body:
        return body
    middle = len(body) // 2
    return body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1:]


def _drop(request: web.Request) -> web.StreamResponse:
    transport = request.transport
    if transport is not None:
        transport.abort()
    raise ConnectionResetError("fault proxy: connection dropped on purpose")


@asynccontextmanager
async def start_fault_proxy(upstream: str, *rules: FaultRule) -> AsyncIterator[FaultProxy]:
    """A proxy to `upstream` (a root URL) on a free loopback port, with `rules`."""
    proxy = FaultProxy(url="", upstream=upstream.rstrip("/"), rules=list(rules))
    async with aiohttp.ClientSession(auto_decompress=False) as session:

        async def handle(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            seen = Proxied(request.method, request.path, dict(request.query),
                           dict(request.headers), len(body))
            rule = proxy._fault_for(seen)
            fault = rule.fault if rule is not None else None
            if fault is Fault.SLOW_DOWN:
                return web.Response(status=503, body=SLOW_DOWN_XML,
                                    content_type="application/xml")
            if fault is Fault.RESET:
                return _drop(request)
            if fault is Fault.CORRUPT:
                body = _flip(body)
            if fault is Fault.STALL:
                async with proxy._stall_changed:
                    proxy.stalled += 1
                    proxy._stall_changed.notify_all()
                try:
                    await proxy._released.wait()
                finally:
                    proxy.stalled -= 1
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
            async with session.request(request.method, proxy.upstream + request.path_qs,
                                       headers=headers,
                                       data=io.BytesIO(body) if body else None,
                                       allow_redirects=False) as reply:
                payload = await reply.read()
                out_headers = {k: v for k, v in reply.headers.items() if k.lower() not in _HOP}
            if fault is Fault.RESET_AFTER:
                return _drop(request)
            if request.method == "HEAD":  # no body, but the object's length is the answer
                out_headers["Content-Length"] = reply.headers.get("Content-Length", "0")
                return web.Response(status=reply.status, headers=out_headers)
            return web.Response(status=reply.status, headers=out_headers, body=payload)

        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", handle)
        server = TestServer(app, host="127.0.0.1", port=0)
        await server.start_server()
        proxy.url = str(server.make_url("")).rstrip("/")
        try:
            yield proxy
        finally:
            await server.close()


@contextmanager
def background_fault_proxy(upstream: str, *rules: FaultRule) -> Iterator[FaultProxy]:
    """`start_fault_proxy` served from another thread, for synchronous tests that start
    real processes (`AWS_ENDPOINT_URL=proxy.url` in their environment)."""
    with anyio.from_thread.start_blocking_portal() as portal, \
            portal.wrap_async_context_manager(start_fault_proxy(upstream, *rules)) as proxy:
        yield proxy
