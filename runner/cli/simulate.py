"""`kling-batch simulate`: serve the built-in Scenario API simulator for other clients.

It prints the base URL and the environment variables that point the SDK (or kling-batch)
at it, then serves until SIGINT or SIGTERM and exits 0. Its accounting is at
`GET <host:port>/_sim/stats` (simulator-only, no auth).
"""

from __future__ import annotations

import argparse
import signal
from collections.abc import Sequence
from pathlib import Path

import anyio

from runner.cli import output
from runner.errors import EXIT_OK, UsageError
from runner.simulator import FAULT_NAMES, PROFILES, Simulator, SimulatorConfig, start_simulator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's flags."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", type=int, default=8780, help="API port (0: any free port)")
    parser.add_argument("--cdn-port", type=int, default=0, help="download CDN port (0: any)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="none",
                        help="a named set of fault rates")
    parser.add_argument("--seed", type=int, default=0, help="seed of every fault decision")
    parser.add_argument("--job-seconds", type=float, nargs=2, metavar=("MIN", "MAX"),
                        default=(0.3, 1.5), help="how long a job runs, drawn per job")
    parser.add_argument("--api-key", help="accept only this Basic key (default: any)")
    parser.add_argument("--api-secret", help="accept only this Basic secret (default: any)")
    parser.add_argument("--fault", action="append", default=[], metavar="NAME=RATE",
                        help=f"override one fault rate (0..1); names: {', '.join(FAULT_NAMES)}")
    parser.add_argument("--credit-limit", type=int, help="answer 402 after N created jobs")
    parser.add_argument("--max-parallel-jobs", type=int,
                        help="answer 429 to generates beyond N jobs in flight")
    parser.add_argument("--url-ttl", type=float, default=900.0, help="signed URL lifetime (s)")
    parser.add_argument("--slow-seconds", type=float, default=3.0,
                        help="delay of the slow_response fault (s)")
    parser.add_argument("--video-pad-bytes", type=int, default=0,
                        help="grow every output video by N bytes (download benchmarks)")
    parser.add_argument("--video-size", type=int, nargs=2, metavar=("WIDTH", "HEIGHT"),
                        default=(320, 180), help="frame size of the output videos (even)")
    parser.add_argument("--video-fps", type=int, default=12, help="frames per second")
    parser.add_argument("--video-seconds", type=float, default=2.0,
                        help="length of every output video")
    parser.add_argument("--retry-after", type=float, default=0.5, metavar="SECONDS",
                        help="delay hint of every 429 (rate-limit fault and parallel cap)")
    parser.add_argument("--no-team-limits", action="store_true",
                        help="answer 403 to GET /v1/teams/{teamId}/limits")
    parser.add_argument("--state-file", type=Path, metavar="PATH",
                        help="load the simulator's jobs and assets from PATH and keep them "
                        "there, so a restarted simulator still knows them")


def parse_faults(items: Sequence[str]) -> dict[str, float]:
    """`["rate_limit=0.2", …]` → `{"rate_limit": 0.2}`; UsageError names a bad item."""
    rates: dict[str, float] = {}
    for item in items:
        name, separator, value = item.partition("=")
        if not separator or name not in FAULT_NAMES:
            raise UsageError(f"--fault {item!r}: expected NAME=RATE",
                             hint=f"NAME is one of {', '.join(FAULT_NAMES)}")
        try:
            rates[name] = float(value)
        except ValueError as exc:
            raise UsageError(f"--fault {item!r}: {value!r} is not a number") from exc
    return rates


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    """The simulator settings the flags describe; UsageError when they are inconsistent."""
    try:
        return SimulatorConfig(
            seed=args.seed, profile=args.profile, faults=parse_faults(args.fault),
            job_seconds=(args.job_seconds[0], args.job_seconds[1]),
            credit_limit=args.credit_limit, max_parallel_jobs=args.max_parallel_jobs,
            url_ttl_seconds=args.url_ttl, slow_seconds=args.slow_seconds,
            video_pad_bytes=args.video_pad_bytes, video_width=args.video_size[0],
            video_height=args.video_size[1], video_fps=args.video_fps,
            video_seconds=args.video_seconds, retry_after_seconds=args.retry_after,
            team_limits_readable=not args.no_team_limits, api_key=args.api_key,
            api_secret=args.api_secret, host=args.host, port=args.port, cdn_port=args.cdn_port,
            state_file=args.state_file,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def config_from_argv(argv: Sequence[str]) -> SimulatorConfig:
    """The config that `kling-batch simulate ARGV` would serve (for tests and tooling)."""
    parser = argparse.ArgumentParser(prog="kling-batch simulate")
    add_arguments(parser)
    return config_from_args(parser.parse_args(list(argv)))


def announce(sim: Simulator) -> None:
    """Print where the simulator is and how to point a client at it."""
    origin = sim.base_url.removesuffix("/v1")
    output.out(f"Scenario API simulator at {sim.base_url}")
    output.out(f"  download CDN: {sim.cdn_url}")
    output.out(f"  profile: {sim.config.profile}, seed: {sim.config.seed}")
    output.out(f"  accounting: {origin}/_sim/stats")
    output.out("Point a client at it with:")
    for name, value in sim.credentials_env().items():
        output.out(f"  export {name}={value}")
    output.out("Stop with Ctrl+C.")


async def serve(config: SimulatorConfig) -> None:
    """Run the simulator until SIGINT or SIGTERM."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with start_simulator(config) as sim:
            announce(sim)
            async for _ in signals:
                break
    output.err("simulator stopped")


def execute(args: argparse.Namespace) -> int:
    """Serve until interrupted; exit 0."""
    config = config_from_args(args)
    try:
        anyio.run(serve, config)
    except OSError as exc:
        raise UsageError(f"cannot listen on {config.host}:{config.port}: {exc.strerror}",
                         hint="pick another --port") from exc
    return EXIT_OK
