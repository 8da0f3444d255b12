"""Asset lookups coalesced: the jobs that finish together share `POST /v1/assets/get-bulk`.

A download needs the asset's fresh signed URL (and again after it expires). One listing
often reports many jobs done at once; instead of one `GET /v1/assets/{id}` each, their
lookups wait a moment (`linger`) in one queue and go out as bulk requests of up to 200 ids.
The server task runs in the batch's task group; a caller cancelled while it waits simply
stops waiting.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio

from runner.api.client import BULK_ASSETS, ScenarioClient
from runner.domain import RemoteAsset
from runner.errors import ApiError, PermanentApiError, TransientApiError


@dataclass
class _Waiter:
    asset_id: str
    done: anyio.Event = field(default_factory=anyio.Event)
    asset: RemoteAsset | None = None
    error: ApiError | None = None


class AssetLookup:
    """`await lookup(asset_id)`: the asset, from a shared bulk request."""

    def __init__(self, client: ScenarioClient, *, linger: float = 0.02) -> None:
        self._client = client
        self._linger = linger
        self._send, self._receive = anyio.create_memory_object_stream[_Waiter](10_000)
        self.requests = 0  # bulk requests made (for tests and figures)

    async def __call__(self, asset_id: str) -> RemoteAsset:
        waiter = _Waiter(asset_id)
        await self._send.send(waiter)
        await waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error
        assert waiter.asset is not None  # set together with done, or error is
        return waiter.asset

    async def run(self) -> None:
        """Serve lookups until cancelled (with the batch); both ends close with it."""
        with self._send, self._receive:
            async for first in self._receive:
                await self._client.clock.sleep(self._linger)
                batch = [first]
                while True:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except anyio.WouldBlock:
                        break
                for start in range(0, len(batch), BULK_ASSETS):
                    await self._serve(batch[start:start + BULK_ASSETS])

    async def _serve(self, waiters: list[_Waiter]) -> None:
        ids = list(dict.fromkeys(w.asset_id for w in waiters))
        try:
            try:
                self.requests += 1
                found = {a.asset_id: a for a in await self._client.get_assets(ids)}
            except ApiError as exc:
                for waiter in waiters:
                    waiter.error = exc
                return
            for waiter in waiters:
                waiter.asset = found.get(waiter.asset_id)
                if waiter.asset is None:
                    waiter.error = PermanentApiError(
                        f"asset {waiter.asset_id} was not in the API's answer to get-bulk")
        finally:
            for waiter in waiters:  # also when cancelled: nobody waits forever
                if waiter.asset is None and waiter.error is None:
                    waiter.error = TransientApiError("the asset lookup was interrupted")
                waiter.done.set()
