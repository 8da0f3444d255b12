"""The batch in other layouts for dataset tools: WebDataset tar shards (`samples` decides
what goes where, purely; `tars` writes the shards atomically)."""

from runner.export.samples import (
    SHARD_PATTERN,
    Sample,
    sample_key,
    samples,
    shard_name,
    shard_plan,
)
from runner.export.tars import Exported, write_shards

__all__ = [
    "SHARD_PATTERN",
    "Exported",
    "Sample",
    "sample_key",
    "samples",
    "shard_name",
    "shard_plan",
    "write_shards",
]
