"""The batch's files in object storage (the S3 API): where (`location`: `s3://BUCKET/PREFIX`),
how to reach it (`config`: the AWS variables), the client with verified, streamed,
multipart uploads and bounded retries (`store`, `transfer`, `checksums`), the bounded local
spool downloads wait in (`spool`), the engine's destination (`destination`) and the batch's
views written under the prefix (`views`).

Layout under the prefix: `videos/<id>.mp4` (as in the folder), `metadata.jsonl`,
`results.csv`, `report.html`, `superseded/<id>/attempt-<n>/<file>`.

A run into a store, as the CLI wires it::

    location = S3Location.parse(args.output)                  # UsageError: exit 2
    async with open_object_destination(location, os.environ) as destination:
        stored = await stored_videos(destination.store)        # what is in the bucket
        await complete_store_moves(destination.store, records.values())
        ... prepare_run(manifest, options,
                        verified=lambda record: stored_assets(stored, record)) ...
        ... run_batch(..., destination=destination)            # publishes the views
    # `report`: await write_store_views(store, records=..., specs=..., events=...)
"""

from runner.objstore.checksums import (
    SHA256_META,
    b64_digest,
    b64_of_hex,
    composite_checksum,
    stored_object_problem,
)
from runner.objstore.config import DEFAULT_REGION, S3Config
from runner.objstore.destination import (
    ObjectStoreDestination,
    complete_store_moves,
    open_object_destination,
)
from runner.objstore.location import SCHEME, S3Location, bucket_problem, is_object_store_url
from runner.objstore.spool import DEFAULT_CAPACITY, Spool, default_spool_dir
from runner.objstore.store import (
    ObjectStore,
    StoredObject,
    UploadTuning,
    client_config,
    is_transient,
    open_store,
)
from runner.objstore.transfer import abort_upload
from runner.objstore.views import (
    StoreViews,
    planned_jobs,
    render_store_views,
    stored_assets,
    stored_videos,
    write_store_views,
)

__all__ = [
    "DEFAULT_CAPACITY",
    "DEFAULT_REGION",
    "SCHEME",
    "SHA256_META",
    "ObjectStore",
    "ObjectStoreDestination",
    "S3Config",
    "S3Location",
    "Spool",
    "StoreViews",
    "StoredObject",
    "UploadTuning",
    "abort_upload",
    "b64_digest",
    "b64_of_hex",
    "bucket_problem",
    "client_config",
    "complete_store_moves",
    "composite_checksum",
    "default_spool_dir",
    "is_object_store_url",
    "is_transient",
    "open_object_destination",
    "open_store",
    "planned_jobs",
    "render_store_views",
    "stored_assets",
    "stored_object_problem",
    "stored_videos",
    "write_store_views",
]
