"""State records → the camelCase JSON shapes of the Scenario API (docs/api.md §2, §3, §4)."""

from __future__ import annotations

from typing import Any

from runner.simulator.context import SimContext
from runner.simulator.faults import Outcome
from runner.simulator.state import Asset, Job, Upload

OWNER_ID = "proj_simulator"
AUTHOR_ID = "user_simulator"

# How a client tells the two failure styles apart: a transient failure's hint says
# "temporary" and invites a resubmission; a content-policy hint says "permanent".
FAILURES: dict[Outcome, tuple[str, str]] = {
    Outcome.CONTENT_POLICY: (
        "Content policy violation: the request was flagged by the moderation filter.",
        "This failure is permanent: change the prompt or the input images before trying again.",
    ),
    Outcome.TRANSIENT: (
        "Generation failed: the inference worker was lost (upstream timeout).",
        "This is a temporary failure: submitting the same request again should work.",
    ),
}


def job_json(context: SimContext, job: Job) -> dict[str, Any]:
    """The `Job` object for `job` as it stands now."""
    snap = job.snapshot(context.clock())
    metadata: dict[str, Any] = {"input": job.body}
    if snap.status == "success":
        metadata["assetIds"] = list(job.asset_ids)
    elif snap.status == "failure":
        metadata["error"], metadata["hint"] = FAILURES[job.outcome]
    history = [
        {"status": status, "date": context.iso(job.created + offset)}
        for status, offset in snap.history
    ]
    return {
        "jobId": job.job_id,
        "jobType": "custom",
        "status": snap.status,
        "progress": snap.progress,
        "metadata": metadata,
        "statusHistory": history,
        "createdAt": context.iso(job.created),
        "updatedAt": context.iso(job.created + snap.updated),
        "ownerId": OWNER_ID,
        "authorId": AUTHOR_ID,
        "billing": {"cuCost": job.cost, "cuDiscount": 0},
    }


def asset_json(context: SimContext, asset: Asset) -> dict[str, Any]:
    """The `Asset` object, with a freshly signed URL on the CDN origin."""
    metadata: dict[str, Any] = {"kind": asset.kind, "type": asset.source, "name": asset.name}
    if asset.parent_job_id is not None:
        metadata["parentJobId"] = asset.parent_job_id
    if asset.model_id is not None:
        metadata["modelId"] = asset.model_id
    created = context.iso(asset.created)
    return {
        "id": asset.asset_id,
        "authorId": AUTHOR_ID,
        "ownerId": OWNER_ID,
        "collectionIds": [],
        "createdAt": created,
        "updatedAt": created,
        "editCapabilities": [],
        "kind": asset.kind,
        "metadata": metadata,
        "mimeType": asset.mime_type,
        "privacy": "private",
        "properties": dict(asset.properties),
        "source": asset.source,
        "status": "success",
        "tags": [],
        "url": context.asset_url(asset),
    }


def upload_json(context: SimContext, upload: Upload, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The `Upload` object; `parts` carries the signed part URLs while it is pending."""
    status = "pending"
    if upload.error is not None:
        status = "failed"
    elif upload.asset_id is not None:
        status = "imported"
    elif upload.completed_at is not None:
        status = "validating"
    body: dict[str, Any] = {
        "id": upload.upload_id,
        "authorId": AUTHOR_ID,
        "ownerId": OWNER_ID,
        "createdAt": context.iso(upload.created),
        "updatedAt": context.iso(upload.completed_at or upload.created),
        "fileName": upload.file_name,
        "originalFileName": upload.file_name,
        "contentType": upload.content_type,
        "fileSize": upload.file_size,
        "partsCount": upload.parts_count,
        "kind": upload.kind,
        "source": "multipart",
        "status": status,
    }
    if parts:
        body["parts"] = parts
    if upload.asset_id is not None:
        body["entityId"] = upload.asset_id
    if upload.error is not None:
        body["errorMessage"] = upload.error
    return body
