"""Helpers for end-to-end tests of `run`: a simulator in a background thread, manifests on
disk, the CLI in-process (`run_cli`) or as a real process (`start_run`), and readers for the
output folder. The CLI runs for real, over real HTTP, against a real simulator; only the
simulator's accounting is read directly.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio.from_thread
import yaml

from runner.cli import main
from runner.simulator import Simulator, SimulatorConfig, VideoSpec, encode_clip, start_simulator
from tests.helpers.media import png_bytes
from tests.helpers.simulator import FAST_CONFIG

REPO = Path(__file__).resolve().parents[2]

FAST_RUN = ["--poll-interval", "0.05", "--poll-max", "0.2", "--listings-per-second", "20",
            "--settle", "0.5"]  # not -q: tests read the summary and notes


@contextmanager
def background_simulator(**overrides: Any) -> Iterator[Simulator]:
    """A simulator on loopback ports, served by an event loop in another thread."""
    config = SimulatorConfig(**{**FAST_CONFIG, **overrides})
    with anyio.from_thread.start_blocking_portal() as portal, portal.wrap_async_context_manager(
        start_simulator(config)
    ) as sim:
        yield sim


def make_assets(folder: Path) -> None:
    """A character image and a 3-second driving video beside the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hero.png").write_bytes(png_bytes(400, 400, 90))
    encode_clip(folder / "dance.mp4", VideoSpec(width=320, height=240, fps=12, seconds=3.0),
                "dance")


ALL_MODELS: list[dict[str, Any]] = [
    {"id": "knight", "model": "model_kling-v2-1-pro",
     "params": {"prompt": "A knight walks through fog", "startImage": "assets/hero.png",
                "duration": "5"}},
    {"id": "city", "model": "model_kling-v3-t2v-4k",
     "params": {"prompt": "Neon rain over a city", "duration": "5"}},
    {"id": "dance26", "model": "model_kling-v2-6-motion-control",
     "params": {"image": "assets/hero.png", "video": "assets/dance.mp4",
                "characterOrientation": "image"}},
    {"id": "o1ref", "model": "model_kling-o1-video-reference",
     "params": {"prompt": "@Element1 dances", "video": "assets/dance.mp4",
                "elements": [{"frontalImage": "assets/hero.png"}]}},
    {"id": "dance3", "model": "model_kling-v3-pro-motion-control",
     "params": {"image": "assets/hero.png", "video": "assets/dance.mp4",
                "characterOrientation": "video"}},
]


def t2v_jobs(count: int, prefix: str = "clip") -> list[dict[str, Any]]:
    """`count` distinct text-to-video jobs (cheap: no uploads)."""
    return [
        {"id": f"{prefix}-{i:03d}", "model": "model_kling-v3-t2v-4k",
         "params": {"prompt": f"Shot number {i} of a lighthouse at dusk", "duration": "5"}}
        for i in range(count)
    ]


def write_manifest(folder: Path, jobs: list[dict[str, Any]], name: str = "batch.yaml",
                   **top: Any) -> Path:
    """A manifest file with these jobs (and any other top-level keys)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump({"version": 1, **top, "jobs": jobs}, sort_keys=False))
    return path


def run_cli(manifest: Path, out: Path, sim: Simulator | None, *extra: str) -> int:
    """`kling-batch run` against `sim` (credentials from the environment the test set)."""
    base = ["--base-url", sim.base_url] if sim is not None else []
    return main(["run", str(manifest), "-o", str(out), *base, *FAST_RUN, *extra])


def start_run(manifest: Path, out: Path, sim: Simulator, *extra: str) -> subprocess.Popen[bytes]:
    """A real `run` process; its stderr goes to a file beside the output folder."""
    env = {**os.environ, "SCENARIO_SDK_API_KEY": "k", "SCENARIO_SDK_API_SECRET": "s",
           "PYTHONPATH": str(REPO)}
    env.pop("SCENARIO_SDK_JWT", None)
    command = [sys.executable, "-m", "runner", "run", str(manifest), "-o", str(out),
               "--base-url", sim.base_url, *FAST_RUN, *extra]
    log = out.parent / "run.log"
    with log.open("ab") as sink:
        return subprocess.Popen(command, env=env, stdout=sink, stderr=sink)


def finish(proc: subprocess.Popen[bytes], out: Path, timeout: float) -> str:
    """Wait for `proc`; the tail of the runs' log."""
    proc.wait(timeout=timeout)
    return (out.parent / "run.log").read_text(errors="replace")[-3000:]


def wait_for_events(out: Path, event: str, count: int, timeout: float = 60.0) -> None:
    """Wait until the ledger holds `count` events of kind `event`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (out / "ledger.jsonl").exists():
            lines = (out / "ledger.jsonl").read_bytes().splitlines()
            if sum(f'"event":"{event}"'.encode() in line for line in lines) >= count:
                return
        time.sleep(0.02)
    raise AssertionError(f"no {count} {event!r} events within {timeout}s")


def ledger_events(out: Path) -> list[dict[str, Any]]:
    """Every parseable ledger line."""
    lines = (out / "ledger.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def status_json(out: Path, capsys: Any, code: int | None = None) -> list[dict[str, Any]]:
    """`status --json` of a folder, parsed; `code`: the exit code it must give (default:
    any of status's own, 0 every job done, 1 some failed or canceled, 4 work remains)."""
    capsys.readouterr()
    got = main(["status", str(out), "--json"])
    assert got == code if code is not None else got in (0, 1, 4), got
    return list(json.loads(capsys.readouterr().out))


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
