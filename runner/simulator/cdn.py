"""The download "CDN" and upload part host: a second listener, so a second origin.

It needs no credentials (the signature is the credential) and records every Authorization
header that reaches it, so tests can prove that a client never leaks its API secret here.
Files are streamed from disk in chunks with a Content-Length; the `truncated_download` fault
sends part of the body and then cuts the connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from runner.simulator.context import CONTEXT, SimContext, signature_ok
from runner.simulator.resets import reset_connection

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_CHUNK = 256 * 1024
_MAX_PART_BYTES = 5 * 1024**3


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


@web.middleware
async def _record_and_verify(request: web.Request, handler: _Handler) -> web.StreamResponse:
    context = request.app[CONTEXT]
    context.stats.cdn_requests += 1
    authorization = request.headers.get("Authorization")
    if authorization is not None:
        context.stats.cdn_authorization_headers.append(authorization)
    expires = request.query.get("expires", "")
    signature = request.query.get("signature", "")
    if not signature_ok(context.signing_key, request.path, expires, signature, context.unix()):
        return _json_error(403, "Request has expired or its signature does not match.")
    return await handler(request)


async def _send_file(request: web.Request) -> web.StreamResponse:
    context = request.app[CONTEXT]
    asset = context.state.assets.get(request.match_info["asset_id"])
    if asset is None:
        return _json_error(404, "No such file.")
    path = await context.materialize(asset)
    size = path.stat().st_size
    attempt = context.state.next_attempt(f"cdn:{asset.asset_id}")
    cut_at = size // 2 if context.fires("truncated_download", asset.asset_id, attempt) else size
    response = web.StreamResponse(headers={"Content-Type": asset.mime_type})
    response.content_length = size
    await response.prepare(request)
    sent = await _stream(response, path, cut_at)
    context.stats.bytes_served += sent
    if cut_at < size:
        reset_connection(request)
        return response
    await response.write_eof()
    return response


async def _stream(response: web.StreamResponse, path: Path, limit: int) -> int:
    sent = 0
    with path.open("rb") as handle:  # local disk reads of 256 KiB are short enough for the loop
        while sent < limit:
            chunk = handle.read(min(_CHUNK, limit - sent))
            if not chunk:
                break
            await response.write(chunk)
            sent += len(chunk)
    return sent


async def _receive_part(request: web.Request) -> web.StreamResponse:
    context = request.app[CONTEXT]
    upload = context.state.uploads.get(request.match_info["upload_id"])
    number = int(request.match_info["number"])
    if upload is None or upload.completed_at is not None:
        return _json_error(404, "No such upload in progress.")
    if not 1 <= number <= upload.parts_count:
        return _json_error(400, f"Part number {number} is outside 1..{upload.parts_count}.")
    path = context.work_dir / f"{upload.upload_id}.part{number}"
    received = 0
    with path.open("wb") as handle:  # chunked local writes keep memory flat
        async for chunk in request.content.iter_chunked(_CHUNK):
            received += len(chunk)
            if received > _MAX_PART_BYTES:
                return _json_error(413, "Part too large.")
            handle.write(chunk)
    upload.parts[number] = path
    return web.Response(status=200, headers={"ETag": f'"{upload.upload_id}-{number}"'})


def build_cdn_app(context: SimContext) -> web.Application:
    """The aiohttp application of the CDN listener."""
    app = web.Application(middlewares=[_record_and_verify], client_max_size=_MAX_PART_BYTES)
    app[CONTEXT] = context
    app.router.add_get(r"/files/{asset_id}/{name}", _send_file)
    app.router.add_put(r"/uploads/{upload_id}/parts/{number:\d+}", _receive_part)
    return app
