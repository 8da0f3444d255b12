"""`kling-batch export DIR --webdataset OUT [--shard-size N]`: the batch's verified videos
as WebDataset tar shards (`<key>.mp4` + `<key>.json` per sample)."""

from __future__ import annotations

import argparse
from pathlib import Path

from runner.cli import output
from runner.cli.status import load_views
from runner.errors import UsageError
from runner.export import samples, write_shards
from runner.ledger import load_records
from runner.views import human_bytes

DEFAULT_SHARD_SIZE = 1000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", type=Path, help="the run's output folder")
    parser.add_argument("--webdataset", type=Path, required=True, metavar="OUT",
                        help="folder for the shards: OUT/shard-000000.tar, …")
    parser.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE, metavar="N",
                        help=f"samples per shard (default {DEFAULT_SHARD_SIZE}); keep shards "
                        "around 1 GB: N ≈ 1 GB / your videos' size")


def execute(args: argparse.Namespace) -> int:
    if args.shard_size < 1:
        raise UsageError(f"--shard-size must be at least 1, got {args.shard_size}")
    directory: Path = args.directory
    load_views(directory)  # a folder without a run is a usage error, said the same way
    if args.webdataset.resolve() == directory.resolve():
        raise UsageError("--webdataset OUT must not be the run's own folder",
                         hint="e.g. --webdataset wds/")  # fmt: skip
    items = list(samples(load_records(directory).values()))
    done = write_shards(directory, items, args.webdataset, args.shard_size)
    output.err(f"{done.samples} sample(s), {human_bytes(done.bytes)} of video, in "
               f"{len(done.shards)} shard(s)")
    for shard in done.shards:
        output.out(str(shard))
    return 0
