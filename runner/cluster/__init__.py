"""Several runners, one batch: the shared ledger in PostgreSQL (schema, events store) and
the coordination of the runners over it (claims, leases, fencing, batch-wide places, the
cluster-wide unknown-POST rule, the lister lease), all in plain SQL."""

from runner.cluster.batches import (
    LEDGER_ENV,
    SharedBatch,
    batch_location,
    check_ledger_url,
    connected,
    is_ledger_url,
    open_batch,
    read_shared_batch,
    require_batch,
)
from runner.cluster.cancels import cancel_unsubmitted
from runner.cluster.coordinator import BatchCounts, Claim, Coordinator, body_key
from runner.cluster.database import (
    DEFAULT_PATIENCE,
    Database,
    open_pool,
    safe_url,
    session_options,
)
from runner.cluster.membership import SharedRun, prepare_shared_run
from runner.cluster.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    PostgresLedger,
    migrate,
    read_batch_events,
)

__all__ = [
    "DEFAULT_PATIENCE",
    "LEDGER_ENV",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "BatchCounts",
    "Claim",
    "Coordinator",
    "Database",
    "PostgresLedger",
    "SharedBatch",
    "SharedRun",
    "batch_location",
    "body_key",
    "cancel_unsubmitted",
    "check_ledger_url",
    "connected",
    "is_ledger_url",
    "migrate",
    "open_batch",
    "open_pool",
    "prepare_shared_run",
    "read_batch_events",
    "read_shared_batch",
    "require_batch",
    "safe_url",
    "session_options",
]
