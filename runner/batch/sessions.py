"""The HTTP sessions of a run: one for the API, one that never carries credentials."""

from __future__ import annotations

import aiohttp
import anyio


class api_sessions:
    """Two aiohttp sessions: one for the API (credentials added per request by the client,
    only for its origin), one that never carries credentials, for the CDN and upload parts.
    """

    async def __aenter__(self) -> tuple[aiohttp.ClientSession, aiohttp.ClientSession]:
        timeout = aiohttp.ClientTimeout(total=None, connect=5.0, sock_read=60.0)
        self._api = aiohttp.ClientSession(timeout=timeout, raise_for_status=False)
        self._cdn = aiohttp.ClientSession(timeout=timeout, raise_for_status=False)
        return self._api, self._cdn

    async def __aexit__(self, *exc: object) -> None:
        with anyio.CancelScope(shield=True):
            await self._api.close()
            await self._cdn.close()
