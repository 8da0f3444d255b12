"""Benchmark of `kling-batch run` against the simulator: throughput, requests per job, memory.

    python tests/benchmarks/bench_run.py [JOBS] [--mode each|list|both] [--concurrency N]

Runs the real CLI in-process against a simulator served from a background thread (loopback
only, bounded: JOBS jobs, then it stops). Jobs take 2-6 s at the simulator, so the figures
show how the poller trades requests for latency. Not a test: figures go in the README.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from runner.cli import main  # noqa: E402
from tests.helpers.runs import background_simulator, t2v_jobs, write_manifest  # noqa: E402


def bench(jobs: int, mode: str, concurrency: int, job_seconds: tuple[float, float]) -> None:
    os.environ.update(SCENARIO_SDK_API_KEY="bench", SCENARIO_SDK_API_SECRET="bench")
    with tempfile.TemporaryDirectory() as tmp, background_simulator(
        job_seconds=job_seconds, video_fps=4, video_seconds=0.5
    ) as sim:
        manifest = write_manifest(Path(tmp), t2v_jobs(jobs, prefix="b"))
        started = time.perf_counter()
        code = main(["run", str(manifest), "-o", str(Path(tmp) / "out"), "--base-url",
                     sim.base_url, "--concurrency", str(concurrency), "--poll-mode", mode,
                     "--poll-interval", "1", "--poll-max", "4", "-q"])
        wall = time.perf_counter() - started
        stats = sim.stats
        per_job = stats.requests_by_endpoint["GET /v1/jobs/{jobId}"] / jobs
        listings = stats.requests_by_endpoint["GET /v1/jobs"]
        ideal = jobs / concurrency * sum(job_seconds) / 2  # `concurrency` jobs at a time
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"mode={mode:<4} jobs={jobs} concurrency={concurrency} exit={code} "
          f"wall={wall:.1f}s (ideal ~{ideal:.1f}s) GET/job={per_job:.2f} "
          f"listings={listings} max_in_flight={stats.max_jobs_in_flight} "
          f"peak_rss={rss:.0f}MiB")


def cli() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("jobs", type=int, nargs="?", default=300)
    parser.add_argument("--mode", choices=("each", "list", "both"), default="both")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--job-seconds", type=float, nargs=2, default=(2.0, 6.0),
                        metavar=("MIN", "MAX"), help="job length at the simulator")
    args = parser.parse_args()
    for mode in ("each", "list") if args.mode == "both" else (args.mode,):
        bench(args.jobs, mode, args.concurrency, tuple(args.job_seconds))


if __name__ == "__main__":
    cli()
