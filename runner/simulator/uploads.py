"""The multipart upload flow: create, PUT parts on the CDN origin, complete, then poll.

After `complete`, the upload reads `validating` for `upload_validation_seconds`, then the
first read after that assembles the parts into one file (streamed, off the event loop),
creates the asset and reports `imported` with `entityId`. A size that does not match the
declared `fileSize` makes the upload `failed` with an `errorMessage`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import anyio
from aiohttp import web

from runner.simulator.context import CONTEXT, SimContext
from runner.simulator.replies import ApiProblem, json_object
from runner.simulator.state import Asset, Upload
from runner.simulator.video import probe_duration
from runner.simulator.wire import upload_json

KINDS = frozenset({"3d", "asset", "audio", "avatar", "image", "model", "text", "video"})
MAX_PARTS = 10_000


def _positive_int(body: dict[str, Any], name: str, upper: int | None = None) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ApiProblem(400, f"{name} is required for a multipart upload: a positive integer.")
    if upper is not None and value > upper:
        raise ApiProblem(400, f"{name} must be at most {upper}.")
    return value


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ApiProblem(400, f"{name} is required for a multipart upload.")
    return value


def _part_urls(context: SimContext, upload: Upload) -> list[dict[str, Any]]:
    parts = []
    for number in range(1, upload.parts_count + 1):
        url, expires = context.signed_url(f"/uploads/{upload.upload_id}/parts/{number}")
        parts.append({"number": number, "url": url, "expires": expires})
    return parts


async def create_upload(request: web.Request) -> web.Response:
    """POST /v1/uploads: declare a multipart upload and hand out signed part URLs."""
    context = request.app[CONTEXT]
    body = await json_object(request)
    if request.query.get("dryRun") in ("true", "api"):
        return web.json_response({"creativeUnitsCost": 0, "costDetails": {}}, status=269)
    kind = _text(body, "kind")
    if kind not in KINDS:
        raise ApiProblem(400, f"kind must be one of {sorted(KINDS)}, got {kind!r}.")
    name = _text(body, "fileName")
    upload = Upload(
        upload_id=context.state.new_id("upload", name),
        file_name=name,
        content_type=_text(body, "contentType"),
        file_size=_positive_int(body, "fileSize"),
        parts_count=_positive_int(body, "parts", MAX_PARTS),
        kind=kind,
        created=context.clock(),
    )
    context.state.uploads[upload.upload_id] = upload
    return web.json_response({"upload": upload_json(context, upload, _part_urls(context, upload))})


def _assemble(parts: list[Path], target: Path) -> int:
    with target.open("wb") as out:
        for part in parts:
            with part.open("rb") as handle:
                shutil.copyfileobj(handle, out, 1 << 20)
            part.unlink()
    return target.stat().st_size


async def _import(context: SimContext, upload: Upload) -> None:
    target = context.work_dir / f"{upload.upload_id}.data"
    parts = [upload.parts[number] for number in sorted(upload.parts)]
    size = await anyio.to_thread.run_sync(_assemble, parts, target)
    if size != upload.file_size:
        upload.error = f"Received {size} bytes, but fileSize declared {upload.file_size}."
        return
    properties: dict[str, Any] = {"size": size}
    kind = "video" if upload.kind == "video" else "image" if upload.kind == "image" else upload.kind
    if kind == "video":
        duration = await anyio.to_thread.run_sync(probe_duration, target)
        if duration is not None:
            properties["duration"] = round(duration, 3)
    asset_id = context.state.new_id("asset", f"upload:{upload.upload_id}")
    source = "uploaded-video" if kind == "video" else "uploaded"
    context.state.assets[asset_id] = Asset(
        asset_id, kind, upload.content_type, upload.file_name, source, context.clock(),
        target, properties,
    )
    upload.asset_id = asset_id


def _upload(context: SimContext, upload_id: str) -> Upload:
    upload = context.state.uploads.get(upload_id)
    if upload is None:
        raise ApiProblem(404, f"Upload {upload_id} not found.")
    return upload


async def get_upload(request: web.Request) -> web.Response:
    """GET /v1/uploads/{uploadId}: pending, validating, then imported (or failed)."""
    context = request.app[CONTEXT]
    upload = _upload(context, request.match_info["uploadId"])
    async with context.lock(f"upload:{upload.upload_id}"):
        done = upload.asset_id is not None or upload.error is not None
        waited = context.clock() - (upload.completed_at or context.clock())
        due = waited >= context.config.upload_validation_seconds
        if upload.completed_at is not None and not done and due:
            await _import(context, upload)
    parts = _part_urls(context, upload) if upload.completed_at is None else []
    return web.json_response({"upload": upload_json(context, upload, parts)})


async def upload_action(request: web.Request) -> web.Response:
    """POST /v1/uploads/{uploadId}/action {"action": "complete"}."""
    context = request.app[CONTEXT]
    upload = _upload(context, request.match_info["uploadId"])
    body = await json_object(request)
    if body.get("action") != "complete":
        raise ApiProblem(400, "action is required and must be 'complete'.")
    missing = [n for n in range(1, upload.parts_count + 1) if n not in upload.parts]
    if upload.completed_at is None and missing:
        raise ApiProblem(400, f"Parts {missing} were not received: PUT every part first.")
    if upload.completed_at is None:
        upload.completed_at = context.clock()
    return web.json_response({"upload": upload_json(context, upload, [])})


def add_routes(router: web.UrlDispatcher) -> None:
    """Register the upload endpoints under /v1."""
    router.add_post("/v1/uploads", create_upload)
    router.add_get("/v1/uploads/{uploadId}", get_upload)
    router.add_post("/v1/uploads/{uploadId}/action", upload_action)
