"""kling-batch on a folder that already holds many finished jobs: run RSS and ledger replay.

    python tests/benchmarks/bench_scale.py                      # 10,000 vs 100,000 jobs
    python tests/benchmarks/bench_scale.py --sizes 2000,20000   # smaller, quicker

For each size N: a manifest of N distinct jobs, and an output folder synthesised as if a
run had already done N - 1,000 of them (`--new` sets the 1,000): per job, the four ledger
lines of a success (intent, submitted, succeeded, downloaded), written with kling-batch's
own event classes, and its video file. The files are tiny (32 bytes, an `ftyp` box and the
job id, not playable): a resume checks only size and sha256, and 99,000 real videos would
measure the disk. Then `kling-batch run` (a child process, its defaults but
`--concurrency`) resumes the folder for real: it replays the ledger, verifies every file and
runs the new jobs against a simulator in its own process. Printed per size: the run's wall
and CPU seconds and peak RSS (os.wait4), the new jobs done, and the replay alone
(`runner.ledger.load_records` in a fresh process: seconds and peak RSS); then the 100k/10k
ratios (issue 9's target: run RSS at most 1.5x).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchlib import (
    MODEL,
    REPO,
    VIDEO_FLAGS,
    Measured,
    client_env,
    run_measured,
    simulator,
    stop_on_sigterm,
    valid_videos,
    write_manifest,
)

sys.path.insert(0, str(REPO))
from runner.ledger import (
    Downloaded,
    Event,
    Finished,
    Intended,
    Outcome,
    Submitted,
    encode_event,
)
from runner.reconcile.matching import body_fingerprint

TS = "2025-01-01T00:00:00.000Z"
REPLAY = """
import json, resource, sys, time
from pathlib import Path
from runner.ledger import load_records
started = time.perf_counter()
records = load_records(Path(sys.argv[1]))
print(json.dumps({"seconds": time.perf_counter() - started, "records": len(records),
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _events(index: int) -> tuple[list[bytes], bytes]:
    """The ledger lines of job `index`'s finished success, and its file's content."""
    job = f"clip-{index:06d}"
    body = {"prompt": f"Shot number {index} of a lighthouse at dusk", "duration": "5"}
    data = b"\x00\x00\x00\x20ftypisom" + job.encode().ljust(20, b".")
    job_id, asset_id = f"job_prior{index:08d}", f"asset_prior{index:08d}"
    lines: list[Event] = [
        Intended(job=job, ts=TS, attempt=1, model=MODEL, params=body, body=body,
                 fingerprint=body_fingerprint(MODEL, body)),
        Submitted(job=job, ts=TS, job_id=job_id, model=MODEL, attempt=1, cost=300.0),
        Finished(job=job, ts=TS, outcome=Outcome.SUCCEEDED, job_id=job_id, status="success",
                 asset_ids=(asset_id,)),
        Downloaded(job=job, ts=TS, asset_id=asset_id, path=f"videos/{job}.mp4",
                   sha256=hashlib.sha256(data).hexdigest(), bytes=len(data)),
    ]
    return [encode_event(event) for event in lines], data


def synthesise(out: Path, finished: int) -> None:
    """An output folder whose ledger holds `finished` done jobs, with their files."""
    videos = out / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    with (out / "ledger.jsonl").open("wb") as ledger:
        for index in range(finished):
            lines, data = _events(index)
            ledger.writelines(lines)
            (videos / f"clip-{index:06d}.mp4").write_bytes(data)


def replay(out: Path, root: Path) -> dict[str, float]:
    """`load_records` of the folder in a fresh process: seconds, records, peak RSS."""
    reply = subprocess.run([sys.executable, "-c", REPLAY, str(out)], cwd=root,
                           env=client_env(root), capture_output=True, text=True, timeout=600,
                           check=True)
    return dict(json.loads(reply.stdout.strip().splitlines()[-1]))


def run_size(size: int, args: argparse.Namespace, work: Path) -> dict[str, float]:
    folder = work / f"n{size}"
    manifest = write_manifest(folder, size)
    out = folder / "out"
    synthesise(out, size - args.new)
    root = Path(args.kling_root).resolve()
    flags = ["--job-seconds", *(f"{s:g}" for s in args.job_seconds), *VIDEO_FLAGS]
    with simulator(flags, folder / "simulator.log") as sim:
        line = [sys.executable, "-m", "runner", "run", str(manifest), "-o", str(out),
                "--base-url", sim.base_url, "--concurrency", str(args.concurrency), "-q"]
        measured: Measured = run_measured(line, cwd=root, env=client_env(root),
                                          log=folder / "client.log", timeout=1800)
    new_ids = [f"clip-{i:06d}" for i in range(size - args.new, size)]
    replayed = replay(out, root)
    return {"jobs": size, "code": -1 if measured.code is None else measured.code,
            "run_s": measured.seconds, "cpu_s": measured.cpu, "rss_mib": measured.rss_mib,
            "new_done": valid_videos(out, new_ids), "replay_s": replayed["seconds"],
            "replay_rss_mib": replayed["rss_mib"], "records": replayed["records"]}


def report(rows: list[dict[str, float]], new: int) -> None:
    print(f"{'jobs':>8}{'exit':>6}{'run s':>8}{'CPU s':>8}{'RSS MiB':>9}"
          f"{f'new done/{new}':>14}{'replay s':>10}{'replay RSS':>11}")
    for row in rows:
        print(f"{row['jobs']:>8}{row['code']:>6}{row['run_s']:>8.1f}{row['cpu_s']:>8.1f}"
              f"{row['rss_mib']:>9.0f}{row['new_done']:>14}{row['replay_s']:>10.2f}"
              f"{row['replay_rss_mib']:>11.0f}")
    if len(rows) >= 2:
        small, large = rows[0], rows[-1]
        print(f"{large['jobs']:.0f} vs {small['jobs']:.0f} jobs: run RSS x"
              f"{large['rss_mib'] / small['rss_mib']:.2f} (target <= 1.5), replay time x"
              f"{large['replay_s'] / small['replay_s']:.1f}, run time x"
              f"{large['run_s'] / small['run_s']:.1f}")


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated job counts")
    parser.add_argument("--new", type=int, default=1000, help="jobs left to run for real")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--job-seconds", type=float, nargs=2, default=(0.5, 1.5),
                        metavar=("MIN", "MAX"), help="length of the new jobs")
    parser.add_argument("--kling-root", default=str(REPO), help="the checkout to measure")
    parser.add_argument("--keep", metavar="DIR", help="keep the folders (and logs) here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        rows = [run_size(int(size), args, work) for size in args.sizes.split(",")]
    report(rows, args.new)


if __name__ == "__main__":
    main()
