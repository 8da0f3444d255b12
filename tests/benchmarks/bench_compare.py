"""kling-batch, the naive SDK script and the floor, side by side against one simulator setup.

    python tests/benchmarks/bench_compare.py                 # the full run (about 17 min)
    python tests/benchmarks/bench_compare.py --quick         # small sizes (40 s per profile)
    python tests/benchmarks/bench_compare.py --scenarios a,c --profiles flaky --seed 3

Scenarios (issue 9): (a) 400 jobs of 1-3 s at --concurrency 50; (b) 120 jobs of 10-30 s at
30; (c) 120 jobs of 1-3 s at 40 against `--max-parallel-jobs 8`; each with the simulator's
`none` and `flaky` profiles. Every measured run gets a fresh simulator in its own process
(`python -m runner simulate`, same flags and seed for the three tools, so the same prompts
draw the same job durations) and one client as a child process:

- kling-batch: `python -m runner run MANIFEST -o OUT --base-url … --concurrency N -q`, with
  its defaults (`--kling-args` adds flags; `--kling-root` measures another checkout);
- naive-sdk: `naive_sdk.py`, the official SDK as a user would script it;
- floor: `floor_aiohttp.py`, bare aiohttp making only the requests a job needs. It is told
  the job-length range (an oracle kling-batch must learn): it lists every mean/10 s
  (`--floor-interval`). It is the CPU and memory floor, not a bound on makespan or requests:
  a fixed cadence, and one listing loop that a slow answer stalls.

Columns: makespan (the client process from spawn to exit, start-up included); ideal (the
greedy list schedule, in creation order, of the simulator's own record of how long each job
was in flight, on min(concurrency, cap) places; a failed attempt and its resubmission run
back to back; duplicates left out); efficiency = ideal / makespan; done (manifest jobs with
an MP4 in OUT/videos), failed, dups (jobs created for a prompt already created and not
failed: double billing); API requests per job by kind (POST generate, GET job, list jobs,
GET asset, get-bulk, other; from the simulator's per-endpoint counts, refused and faulted
requests included), CDN requests per job; cap refusals per job; client CPU ms per job and
peak RSS (os.wait4 of the child); ratios to the naive script (makespan, API requests) and
to the floor (CPU). `--json PATH` saves every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchlib import (
    HERE,
    REPO,
    VIDEO_FLAGS,
    Measured,
    client_env,
    list_schedule,
    read_jobs,
    run_measured,
    simulator,
    stop_on_sigterm,
    valid_videos,
    write_manifest,
)

TOOLS = ("kling-batch", "naive-sdk", "floor")
KINDS = (
    ("POST", "POST /v1/generate/custom/{modelId}"),
    ("GETjob", "GET /v1/jobs/{jobId}"),
    ("list", "GET /v1/jobs"),
    ("GETasset", "GET /v1/assets/{assetId}"),
    ("bulk", "POST /v1/assets/get-bulk"),
)


@dataclass(frozen=True)
class Scenario:
    name: str
    jobs: int
    seconds: tuple[float, float]
    concurrency: int
    cap: int | None = None

    @property
    def places(self) -> int:
        return min(self.concurrency, self.cap or self.concurrency)

    def title(self, profile: str, seed: int) -> str:
        low, high = self.seconds
        cap = f" against --max-parallel-jobs {self.cap}" if self.cap else ""
        return (f"({self.name}) {self.jobs} jobs of {low:g}-{high:g} s, --concurrency "
                f"{self.concurrency}{cap}; profile {profile}, seed {seed}; "
                f"ideal on {self.places} places")


FULL = {
    "a": Scenario("a", 400, (1.0, 3.0), 50),
    "b": Scenario("b", 120, (10.0, 30.0), 30),
    "c": Scenario("c", 120, (1.0, 3.0), 40, 8),
}
QUICK = {
    "a": Scenario("a", 20, (0.2, 0.6), 10),
    "b": Scenario("b", 8, (1.0, 3.0), 4),
    "c": Scenario("c", 12, (0.2, 0.6), 8, 2),
}


@dataclass
class Row:
    """One tool's run: what was measured and what the simulator recorded."""

    tool: str
    code: int | None
    makespan: float
    ideal: float
    done: int
    failed: int
    dups: int
    resubmissions: int
    per_job: dict[str, float]
    cdn_per_job: float
    refusals_per_job: float
    cpu_ms_per_job: float
    rss_mib: float
    sim_cpu: float
    max_in_flight: int

    @property
    def efficiency(self) -> float:
        return self.ideal / self.makespan if self.makespan else 0.0

    @property
    def api_per_job(self) -> float:
        return sum(self.per_job.values())


def command(tool: str, scenario: Scenario, *, manifest: Path, out: Path, base_url: str,
            args: argparse.Namespace) -> tuple[list[str], Path, dict[str, str]]:
    """The client's command line, working folder and environment."""
    common = [str(manifest), "-o", str(out), "--base-url", base_url,
              "--concurrency", str(scenario.concurrency)]
    if tool == "kling-batch":
        root = Path(args.kling_root).resolve()
        line = [sys.executable, "-m", "runner", "run", *common, "-q", *args.kling_args.split()]
        return line, root, client_env(root)
    if tool == "naive-sdk":
        return [sys.executable, str(HERE / "naive_sdk.py"), *common], out.parent, client_env()
    interval = args.floor_interval or sum(scenario.seconds) / 2 / 10
    line = [sys.executable, str(HERE / "floor_aiohttp.py"), *common,
            "--list-interval", f"{interval:g}"]
    return line, out.parent, client_env()


def sim_flags(scenario: Scenario, profile: str, seed: int) -> list[str]:
    low, high = scenario.seconds
    flags = ["--job-seconds", f"{low:g}", f"{high:g}", "--profile", profile,
             "--seed", str(seed), *VIDEO_FLAGS]
    return [*flags, "--max-parallel-jobs", str(scenario.cap)] if scenario.cap else flags


def timeout_for(scenario: Scenario) -> float:
    return 120 + 6 * scenario.jobs * scenario.seconds[1] / scenario.places


def run_one(tool: str, scenario: Scenario, profile: str, args: argparse.Namespace,
            work: Path) -> Row:
    folder = work / f"{scenario.name}-{profile}-{tool}"
    manifest = write_manifest(folder, scenario.jobs)
    out = folder / "out"
    with simulator(sim_flags(scenario, profile, args.seed), folder / "simulator.log") as sim:
        line, cwd, env = command(tool, scenario, manifest=manifest, out=out,
                                 base_url=sim.base_url, args=args)
        measured = run_measured(line, cwd=cwd, env=env, log=folder / "client.log",
                                timeout=timeout_for(scenario))
        stats = sim.stats()
    (folder / "stats.json").write_text(json.dumps(stats))  # kept with --keep, for a post-mortem
    ids = [f"clip-{i:06d}" for i in range(scenario.jobs)]
    sim_cpu = sim.usage.cpu if sim.usage else float("nan")
    return make_row(tool, scenario, measured, stats, done=valid_videos(out, ids),
                    sim_cpu=sim_cpu)


def make_row(tool: str, scenario: Scenario, measured: Measured, stats: dict[str, Any], *,
             done: int, sim_cpu: float) -> Row:
    jobs = scenario.jobs
    counts: dict[str, int] = stats["requestsByEndpoint"]
    per_job = {kind: counts.get(endpoint, 0) / jobs for kind, endpoint in KINDS}
    named = {endpoint for _, endpoint in KINDS}
    per_job["other"] = sum(n for e, n in counts.items() if e not in named) / jobs
    record = read_jobs(stats["jobs"])
    return Row(
        tool=tool, code=measured.code, makespan=measured.seconds,
        ideal=list_schedule(record.chains, scenario.places), done=done, failed=jobs - done,
        dups=record.duplicates, resubmissions=record.resubmissions, per_job=per_job,
        cdn_per_job=stats["cdnRequests"] / jobs,
        refusals_per_job=stats.get("capRefusals", 0) / jobs,
        cpu_ms_per_job=measured.cpu / jobs * 1000, rss_mib=measured.rss_mib,
        sim_cpu=sim_cpu, max_in_flight=stats["maxJobsInFlight"],
    )


HEADER = (f"{'tool':<12}{'exit':>5}{'make s':>8}{'ideal':>7}{'eff':>6}{'done':>6}{'fail':>5}"
          f"{'dups':>5}{'POST':>6}{'GETjob':>7}{'list':>6}{'GETast':>7}{'bulk':>6}{'other':>6}"
          f"{'API/j':>7}{'CDN/j':>6}{'refus/j':>8}{'CPUms/j':>8}{'RSS MiB':>8}"
          f"{'mk/naive':>9}{'req/naive':>10}{'cpu/floor':>10}")


def _ratio(value: float, base: float | None) -> str:
    return f"{value / base:.2f}" if base else "-"


def format_row(row: Row, naive: Row | None, floor: Row | None) -> str:
    kinds = "".join(f"{row.per_job[k]:>{w}.2f}" for k, w in
                    (("POST", 6), ("GETjob", 7), ("list", 6), ("GETasset", 7), ("bulk", 6),
                     ("other", 6)))
    code = "kill" if row.code is None else str(row.code)
    return (f"{row.tool:<12}{code:>5}{row.makespan:>8.1f}{row.ideal:>7.1f}"
            f"{row.efficiency:>6.2f}{row.done:>6}{row.failed:>5}{row.dups:>5}{kinds}"
            f"{row.api_per_job:>7.2f}{row.cdn_per_job:>6.2f}{row.refusals_per_job:>8.2f}"
            f"{row.cpu_ms_per_job:>8.1f}{row.rss_mib:>8.0f}"
            f"{_ratio(row.makespan, naive.makespan if naive else None):>9}"
            f"{_ratio(row.api_per_job, naive.api_per_job if naive else None):>10}"
            f"{_ratio(row.cpu_ms_per_job, floor.cpu_ms_per_job if floor else None):>10}")


def print_table(title: str, rows: list[Row], work: Path, prefix: str) -> None:
    by_tool = {row.tool: row for row in rows}
    naive, floor = by_tool.get("naive-sdk"), by_tool.get("floor")
    print(f"\n{title}\n{HEADER}")
    for row in rows:
        print(format_row(row, naive, floor))
    print("  simulator CPU s: " + ", ".join(f"{r.tool} {r.sim_cpu:.1f}" for r in rows)
          + "; max jobs in flight: " + ", ".join(f"{r.tool} {r.max_in_flight}" for r in rows)
          + "; resubmissions after a failure: "
          + ", ".join(f"{r.tool} {r.resubmissions}" for r in rows))
    if naive is not None and naive.failed:
        print(f"  naive-sdk failed {naive.failed} job(s): the ratios to it compare unequal work")
    for row in rows:
        if row.code != 0:
            log = work / f"{prefix}-{row.tool}" / "client.log"
            tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
            print(f"  {row.tool} exit {row.code}; its log ends: " + " | ".join(tail)[:400])
    sys.stdout.flush()


def run_all(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    table = QUICK if args.quick else FULL
    results: list[dict[str, Any]] = []
    for name in args.scenarios.split(","):
        scenario = table[name]
        for profile in args.profiles.split(","):
            rows = [run_one(tool, scenario, profile, args, work) for tool in args.tools.split(",")]
            print_table(scenario.title(profile, args.seed), rows, work, f"{name}-{profile}")
            results += [{"scenario": asdict(scenario), "profile": profile, **asdict(row),
                         "efficiency": row.efficiency, "api_per_job": row.api_per_job}
                        for row in rows]
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, to check it works")
    parser.add_argument("--scenarios", default="a,b,c", help="any of a,b,c")
    parser.add_argument("--profiles", default="none,flaky", help="simulator fault profiles")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"any of {','.join(TOOLS)}")
    parser.add_argument("--seed", type=int, default=1, help="the simulator's seed")
    parser.add_argument("--kling-root", default=str(REPO),
                        help="the checkout whose kling-batch is measured (default: this one)")
    parser.add_argument("--kling-args", default="", help="extra flags for `kling-batch run`")
    parser.add_argument("--floor-interval", type=float, metavar="SECONDS",
                        help="the floor's listing interval (default: mean job length / 10)")
    parser.add_argument("--keep", metavar="DIR", help="keep every run's folder (logs) here")
    parser.add_argument("--json", metavar="PATH", help="also write every figure as JSON")
    return parser.parse_args(argv)


def describe(root: Path) -> str:
    """The machine and the measured checkout, for the record (read-only git commands)."""
    def git(*words: str) -> str:
        reply = subprocess.run(["git", "-C", str(root), *words], capture_output=True,
                               text=True, timeout=30, check=False)
        return reply.stdout.strip()

    changed = len(git("diff", "--name-only", "HEAD").splitlines())
    return (f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}, "
            f"Python {platform.python_version()}; kling-batch {root} at "
            f"{git('rev-parse', '--short', 'HEAD') or '?'}"
            f"{f' + {changed} changed file(s)' if changed else ''}")


def main() -> None:
    stop_on_sigterm()
    args = parse_args()
    print(describe(Path(args.kling_root).resolve()))
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        results = run_all(args, work)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
