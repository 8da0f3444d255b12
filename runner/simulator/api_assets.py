"""Handlers for assets (one, or up to 200 in bulk), multipart uploads and model
descriptions."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import anyio
from aiohttp import web

from runner.simulator import uploads
from runner.simulator.catalog import describe_inputs
from runner.simulator.context import CONTEXT, SimContext
from runner.simulator.replies import ApiProblem, json_object
from runner.simulator.state import Asset
from runner.simulator.wire import OWNER_ID, asset_json

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(;[\w=.-]+)*;base64,", re.ASCII)
MAX_BULK_ASSETS = 200  # the SDK's docstring: "Limit of 200 assets"
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"RIFF", "image/webp"),
)


def decode_image(value: Any) -> tuple[bytes, str]:
    """Bytes and MIME type of a raw-base64 or data-URL image; ApiProblem 400 otherwise."""
    if not isinstance(value, str) or not value:
        raise ApiProblem(400, "image is required: a base64 string or a data URL.")
    declared = None
    match = _DATA_URL.match(value)
    if match is not None:
        declared, value = match.group("mime"), value[match.end():]
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiProblem(400, "image is not valid base64.") from exc
    sniffed = next((mime for magic, mime in _MAGIC if data.startswith(magic)), None)
    return data, sniffed or declared or "application/octet-stream"


def _image_size(data: bytes) -> dict[str, int]:
    # PNG keeps its size in the IHDR chunk at a fixed offset; enough for the simulator.
    if data.startswith(b"\x89PNG") and len(data) >= 24:
        return {"width": int.from_bytes(data[16:20], "big"),
                "height": int.from_bytes(data[20:24], "big")}
    return {}


async def create_asset(request: web.Request) -> web.Response:
    """POST /v1/assets {name, image}: store a small image and return its asset."""
    context = request.app[CONTEXT]
    body = await json_object(request)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise ApiProblem(400, "name is required.")
    data, mime = decode_image(body.get("image"))
    kind = "video" if mime.startswith("video/") else "image"
    asset_id = context.state.new_id("asset", f"upload:{name}")
    path = context.work_dir / f"{asset_id}.bin"
    await anyio.Path(path).write_bytes(data)
    properties: dict[str, Any] = {"size": len(data), **_image_size(data)}
    asset = Asset(asset_id, kind, mime, name, "uploaded", context.clock(), path, properties)
    context.state.assets[asset_id] = asset
    return web.json_response({"asset": asset_json(context, asset)})


def _readable(context: SimContext, asset_id: str) -> Asset | None:
    asset = context.state.assets.get(asset_id)
    parent = context.state.jobs.get(asset.parent_job_id or "") if asset else None
    # A job's output does not exist for clients before the job succeeded.
    hidden = parent is not None and parent.snapshot(context.clock()).status != "success"
    return None if hidden else asset


async def _visible_asset(context: SimContext, asset_id: str) -> Asset:
    asset = _readable(context, asset_id)
    if asset is None:
        raise ApiProblem(404, f"Asset {asset_id} not found.")
    await context.materialize(asset)
    return asset


async def get_asset(request: web.Request) -> web.Response:
    """GET /v1/assets/{assetId}: the asset with a signed, expiring URL."""
    context = request.app[CONTEXT]
    asset = await _visible_asset(context, request.match_info["assetId"])
    return web.json_response({"asset": asset_json(context, asset)})


def _bulk_ids(body: dict[str, Any]) -> list[str]:
    ids = body.get("assetIds")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ApiProblem(400, "assetIds is required: a list of asset id strings.")
    if not 1 <= len(ids) <= MAX_BULK_ASSETS:
        raise ApiProblem(400, f"assetIds must hold 1 to {MAX_BULK_ASSETS} asset ids, got "
                              f"{len(ids)}: split the lookup into several requests.")
    return list(dict.fromkeys(ids))  # each asset once, in the order first asked


async def get_bulk(request: web.Request) -> web.Response:
    """POST /v1/assets/get-bulk {assetIds}: the readable ones among them, each exactly as
    GET /v1/assets/{id} shows it (fresh signed URL); unknown ids are left out."""
    context = request.app[CONTEXT]
    ids = _bulk_ids(await json_object(request))
    found = [asset for asset in (_readable(context, i) for i in ids) if asset is not None]
    async with anyio.create_task_group() as group:  # encode first-read videos side by side
        for asset in found:
            group.start_soon(context.materialize, asset)
    return web.json_response({"assets": [asset_json(context, asset) for asset in found]})


async def download_asset(request: web.Request) -> web.Response:
    """POST /v1/assets/{assetId}/download: a signed link to the stored file."""
    context = request.app[CONTEXT]
    asset = await _visible_asset(context, request.match_info["assetId"])
    body = await json_object(request, required=False)
    target = body.get("targetFormat")
    if target is not None and not asset.mime_type.endswith(f"/{target}"):
        raise ApiProblem(400, "Audio and video assets only accept their stored format "
                              f"({asset.mime_type}), not {target!r}.")
    return web.json_response({"url": context.asset_url(asset), "mimeType": asset.mime_type})


async def get_model(request: web.Request) -> web.Response:
    """GET /v1/models/{modelId}: the model and its inputs, derived from its schema."""
    context = request.app[CONTEXT]
    model_id = request.match_info["modelId"]
    model = context.catalog.get(model_id)
    if model is None:
        raise ApiProblem(404, f"Model {model_id} not found.")
    created = context.iso(context.epoch_mono)
    described = {
        "id": model_id,
        "name": str(model.schema.get("title", model_id)),
        "type": "custom",
        "custom": True,
        "capabilities": ["txt2video", "img2video", "video2video"],
        "collectionIds": [],
        "exampleAssetIds": [],
        "privacy": "public",
        "source": "other",
        "status": "trained",
        "tags": [],
        "trainingImagesNumber": 0,
        "createdAt": created,
        "updatedAt": created,
        "ownerId": OWNER_ID,
        "inputs": describe_inputs(model.schema),
    }
    return web.json_response({"model": described})


def add_routes(router: web.UrlDispatcher) -> None:
    """Register the asset, upload and model endpoints under /v1."""
    router.add_post("/v1/assets", create_asset)
    router.add_post("/v1/assets/get-bulk", get_bulk)
    router.add_get("/v1/assets/{assetId}", get_asset)
    router.add_post("/v1/assets/{assetId}/download", download_asset)
    router.add_get("/v1/models/{modelId}", get_model)
    uploads.add_routes(router)
