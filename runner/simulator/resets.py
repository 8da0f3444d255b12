"""Connection resets: how the simulator makes a client see a dropped connection.

Setting SO_LINGER to zero before closing makes the kernel send a TCP RST instead of a FIN,
which is what a crashed proxy or a load balancer dropping the request looks like to a client
(`ConnectionResetError`, httpx `RemoteProtocolError`/`ReadError`, aiohttp
`ServerDisconnectedError`/`ClientOSError`).
"""

from __future__ import annotations

import contextlib
import socket
import struct

from aiohttp import web


def reset_connection(request: web.Request) -> None:
    """Abort the request's connection with a TCP reset; nothing more is sent on it."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # The peer may already be gone; aborting is still right then.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
