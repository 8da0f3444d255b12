"""Benchmark: load and validate a 100,000-job manifest (a script, not a test).

    .venv/bin/python tests/benchmarks/bench_validate.py [JOBS]

Writes the manifest into a temporary folder (three models, local image files shared by all
jobs), then times `load_manifest` (wall clock, and CPU time, which a busy machine disturbs
less) and reports the peak RSS of the process.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

from runner.manifest import load_manifest
from runner.schemas import SchemaRegistry

_HEAD = """version: 1
defaults:
  model: model_kling-v3-t2v-4k
  params: {duration: "5", cfgScale: 0.5}
jobs:
"""


def write_manifest(folder: Path, jobs: int) -> Path:
    """A manifest of `jobs` jobs cycling over three models, and the image they share."""
    (folder / "start.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    path = folder / "big.yaml"
    with path.open("w", encoding="utf-8") as out:
        out.write(_HEAD)
        for index in range(jobs):
            out.write(_job(index))
    return path


def _job(index: int) -> str:
    prompt = f"Shot {index} - a knight walks through fog at dawn, cinematic, slow dolly in"
    if index % 3 == 0:
        return f"  - id: job-{index:06d}\n    params:\n      prompt: {prompt}\n"
    if index % 3 == 1:
        return (
            f"  - id: job-{index:06d}\n    model: model_kling-v2-1-pro\n    params:\n"
            f'      prompt: {prompt}\n      startImage: start.png\n      duration: "10"\n'
        )
    return (
        f"  - id: job-{index:06d}\n    model: model_kling-v3-t2v-4k\n    params:\n"
        f'      multiPrompt:\n        - {{prompt: "{prompt}", duration: "2"}}\n'
        f'        - {{prompt: close-up, duration: "3"}}\n'
    )


def main() -> None:
    """Generate, load, and print the figures."""
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    registry = SchemaRegistry.load()
    with tempfile.TemporaryDirectory() as tmp:
        path = write_manifest(Path(tmp), jobs)
        size = path.stat().st_size
        started, cpu_started = time.perf_counter(), time.process_time()
        manifest = load_manifest(path, registry)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"jobs: {len(manifest.jobs):,}  file: {size / 1e6:.1f} MB")
    print(f"load + validate: {elapsed:.2f} s  ({elapsed / jobs * 1e6:.0f} µs/job)  cpu {cpu:.2f} s")
    print(f"peak RSS: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
