"""Headless Chromium for the report's tests and benchmark: Debian's browser, driven by
Playwright, never a browser Playwright would download.

`chromium_page()` starts `/usr/bin/chromium` (or `$KLING_BATCH_CHROMIUM`) with the flags
of a locked-down, offline headless run and a fresh profile, and yields a page that records
the page's script errors and every request that was not for a local file.

`write_big_batch(folder, jobs)` writes the output folder of a finished 10,000-job batch
without running one: plan, ledger (five models, failures with three reasons, a two-hour
spread of submit and finish times, 429s at a cap), videos (50 distinct real clips, hard
linked), posters; `first_cards_ms(page, url)` opens its report and says when the first
cards were drawn, `scroll_frames(page)` scrolls through it and times the frames.
"""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")

CHROMIUM = Path(os.environ.get("KLING_BATCH_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]  # fmt: skip


@dataclass
class Watched:
    """A page and what it did that a test may not want: script errors, network requests."""

    page: Any
    errors: list[str] = field(default_factory=list)
    remote: list[str] = field(default_factory=list)


@contextmanager
def chromium_page(width: int = 1280, height: int = 900, scale: float = 1.0) -> Iterator[Watched]:
    """A fresh headless Chromium page (see the module's doc); closed afterwards."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="kb-chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": width, "height": height}, device_scale_factor=scale,
        )  # fmt: skip
        try:
            watched = Watched(context.pages[0] if context.pages else context.new_page())
            watched.page.on("pageerror", lambda exc: watched.errors.append(str(exc)))
            watched.page.on("request", lambda req: None if req.url.startswith(("file:", "data:"))
                            else watched.remote.append(req.url))  # fmt: skip
            yield watched
        finally:
            context.close()


def first_cards_ms(page: Any, url: str) -> float:
    """Open `url` and wait for its first job card; milliseconds from navigation start to
    the moment the report's script had drawn its first cards."""
    page.goto(url, wait_until="commit")
    page.wait_for_selector("article.card", timeout=60_000)
    value = page.evaluate(
        "performance.getEntriesByName('kling-batch:first-cards')[0].startTime")
    return float(value)


_SCROLL = """async (steps) => {
  const times = [];
  let last = performance.now();
  for (let i = 0; i < steps; i++) {
    window.scrollBy(0, 400);
    await new Promise(requestAnimationFrame);
    const now = performance.now();
    times.push(now - last);
    last = now;
  }
  times.sort((a, b) => a - b);
  return {p50: times[Math.floor(times.length / 2)], p95: times[Math.floor(times.length * 0.95)],
          max: times[times.length - 1], cards: document.querySelectorAll("article.card").length};
}"""


def scroll_frames(page: Any, steps: int = 300) -> dict[str, float]:
    """Scroll down 400 px a frame for `steps` frames; frame times (ms) and cards drawn."""
    result: dict[str, float] = page.evaluate(_SCROLL, steps)
    return result


MODELS = ["model_kling-v2-1-pro", "model_kling-v3-t2v-4k", "model_kling-v2-6-motion-control",
          "model_kling-o1-video-reference", "model_kling-v3-pro-motion-control"]
REASONS = [("content policy violation", "reword the prompt"),
           ("generation failed: temporary capacity problem", "run again with --retry-failed"),
           ("input image too small", "use an image of at least 300x300")]  # fmt: skip
WORDS = [
    "a", "knight", "walks", "through", "fog", "at", "dawn", "slow", "dolly", "in", "neon",
    "city", "street", "rain", "camera", "rises", "lighthouse", "cliff", "storm", "waves",
    "crashing", "cinematic", "dancer", "beach", "golden", "hour"
]


def _clips(folder: Path, count: int) -> list[tuple[Path, str, int]]:
    from runner.simulator import VideoSpec, encode_clip

    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for n in range(count):
        path = folder / f"clip-{n}.mp4"
        encode_clip(path, VideoSpec(width=320, height=180, fps=12, seconds=1.0), f"clip{n}")
        data = path.read_bytes()
        clips.append((path, hashlib.sha256(data).hexdigest(), len(data)))
    return clips


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _events(job: str, model: str, params: dict[str, Any], n: int, *, rng: random.Random,
            clip: tuple[Path, str, int]) -> list[Any]:
    from runner.ledger import Downloaded, Finished, Intended, Outcome, Submitted

    start = datetime(2025, 1, 1, 22, 0, tzinfo=UTC) + timedelta(seconds=n * 0.72)
    done = start + timedelta(seconds=rng.uniform(60, 300))
    failed = n % 13 == 0
    events: list[Any] = [
        Intended(job=job, ts=_iso(start), attempt=1, model=model, params=params, body=params),
        Submitted(job=job, ts=_iso(start), job_id=f"job_{n:08d}", model=model, attempt=1,
                  cost=100.0),
    ]  # fmt: skip
    if failed:
        error, hint = REASONS[n % len(REASONS)]
        return [*events, Finished(job=job, ts=_iso(done), outcome=Outcome.FAILED,
                                  job_id=f"job_{n:08d}", error=error, hint=hint)]
    _, sha, size = clip
    return [*events,
            Finished(job=job, ts=_iso(done), outcome=Outcome.SUCCEEDED, job_id=f"job_{n:08d}",
                     asset_ids=(f"asset_{n:08d}",)),
            Downloaded(job=job, ts=_iso(done + timedelta(seconds=2)), asset_id=f"asset_{n:08d}",
                       path=f"videos/{job}.mp4", sha256=sha, bytes=size)]  # fmt: skip


def write_big_batch(folder: Path, jobs: int = 10_000) -> Path:
    """The output folder of a finished batch of `jobs` jobs (see the module's doc)."""
    from runner.domain import JobSpec, SourceLocation
    from runner.ledger import JsonlLedger
    from runner.outdir import write_plan

    rng = random.Random(11)
    clips = _clips(folder / "clips", 50)
    (folder / "videos").mkdir(parents=True, exist_ok=True)
    specs, events = [], []
    for n in range(jobs):
        job, model = f"shot-{n:05d}", MODELS[n % len(MODELS)]
        prompt = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30)))
        params = {"prompt": f"{prompt} #{n}", "duration": "5"}
        specs.append(JobSpec(job, model, params, SourceLocation("big.yaml", n + 2, 5), folder))
        clip = clips[n % len(clips)]
        events += _events(job, model, params, n, rng=rng, clip=clip)
        if n % 13:
            os.link(clip[0], folder / "videos" / f"{job}.mp4")
    write_plan(folder, specs)
    ledger = JsonlLedger(folder)
    ledger.write_batch(events)
    ledger.close()
    return folder
