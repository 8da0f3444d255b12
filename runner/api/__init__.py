"""The Scenario API client: one method per endpoint, and everything one request needs —
credentials, sending and retries, backoff, JSON ↔ domain objects, uploads and downloads."""

from runner.api.auth import (
    Credentials,
    account_of,
    api_origin,
    credentials_from_env,
    ensure_anonymous_session,
)
from runner.api.backoff import (
    Pacer,
    RetryPolicy,
    next_retry_delay,
    retry_hint_from_headers,
    should_retry,
)
from runner.api.client import BULK_ASSETS, DEFAULT_BASE_URL, ScenarioClient
from runner.api.downloads import DownloadedFile, download_asset, part_path, size_problem
from runner.api.failures import (
    Failure,
    failure_for_exception,
    failure_for_status,
    final_error,
    retry_allowed,
)
from runner.api.lookup import AssetLookup
from runner.api.paths import jobs_query, path_segment
from runner.api.transport import USER_AGENT, decode_body, encode_json
from runner.api.uploads import (
    IMAGE_ASSET_LIMIT,
    MIN_PART_SIZE,
    PART_SIZE,
    AssetUploader,
    cache_key,
    load_cache,
    part_ranges,
    part_size_for,
    uses_multipart,
)
from runner.api.wire import (
    UploadPart,
    WireFormatError,
    error_message,
    parse_asset,
    parse_created_asset_id,
    parse_estimate,
    parse_job,
    parse_job_page,
    parse_submission,
    parse_upload_state,
    parse_upload_ticket,
)

__all__ = [
    "BULK_ASSETS",
    "DEFAULT_BASE_URL",
    "IMAGE_ASSET_LIMIT",
    "MIN_PART_SIZE",
    "PART_SIZE",
    "USER_AGENT",
    "AssetLookup",
    "AssetUploader",
    "Credentials",
    "DownloadedFile",
    "Failure",
    "Pacer",
    "RetryPolicy",
    "ScenarioClient",
    "UploadPart",
    "WireFormatError",
    "account_of",
    "api_origin",
    "cache_key",
    "credentials_from_env",
    "decode_body",
    "download_asset",
    "encode_json",
    "ensure_anonymous_session",
    "error_message",
    "failure_for_exception",
    "failure_for_status",
    "final_error",
    "jobs_query",
    "load_cache",
    "next_retry_delay",
    "parse_asset",
    "parse_created_asset_id",
    "parse_estimate",
    "parse_job",
    "parse_job_page",
    "parse_submission",
    "parse_upload_state",
    "parse_upload_ticket",
    "part_path",
    "part_ranges",
    "part_size_for",
    "path_segment",
    "retry_allowed",
    "retry_hint_from_headers",
    "should_retry",
    "size_problem",
    "uses_multipart",
]
