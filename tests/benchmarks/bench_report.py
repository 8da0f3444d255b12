"""Benchmark: a 10,000-job report in headless Chromium (a script, not a test).

    python tests/benchmarks/bench_report.py [JOBS] [--loads N]

Writes the output folder of a finished batch of JOBS jobs (default 10,000: five models,
one in 13 failed, 50 distinct real clips hard-linked as the videos) into a temporary
folder, then measures:

- writing the views (`kling-batch report`: posters, report.html, results.csv, README.md),
  once with no poster yet and once with every poster there (the 30 s refresh of a run);
- the page's size;
- in Debian's Chromium (`/usr/bin/chromium`, headless): time from navigation start to the
  first cards drawn (median of N loads), a search over every job, and scrolling 300 frames
  of 400 px (frame times and cards drawn by then).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's runner/

from runner.cli.refresh import write_views
from tests.helpers.browser import (
    chromium_page,
    first_cards_ms,
    scroll_frames,
    write_big_batch,
)


def _timed(folder: Path) -> float:
    start = time.perf_counter()
    write_views(folder)
    return time.perf_counter() - start


_SEARCH = """(text) => new Promise(done => {
  const q = document.getElementById("q"), count = document.getElementById("count");
  new MutationObserver((_, observer) => {
    observer.disconnect();
    requestAnimationFrame(() => done(performance.now() - typed));  // the cards painted
  }).observe(count, {childList: true, characterData: true, subtree: true});
  q.value = text;
  q.dispatchEvent(new Event("input"));
  const typed = performance.now() + 120;  // the search waits 120 ms for more typing
})"""


def _search_ms(page: Any, text: str) -> float:
    """Milliseconds from the end of typing to the narrowed cards on screen."""
    return float(page.evaluate(_SEARCH, text))


def main(argv: list[str]) -> None:
    jobs = int(argv[0]) if argv and argv[0].isdigit() else 10_000
    loads = int(argv[argv.index("--loads") + 1]) if "--loads" in argv else 5
    with tempfile.TemporaryDirectory(prefix="kb-bench-report-") as tmp:
        folder = write_big_batch(Path(tmp) / "batch", jobs)
        cold, warm = _timed(folder), _timed(folder)
        page_file = folder / "report.html"
        print(f"{jobs} jobs: views written in {cold:.2f} s (posters made), {warm:.2f} s "
              f"(posters there); report.html {page_file.stat().st_size / 2**20:.1f} MiB")
        with chromium_page() as watched:
            firsts = [first_cards_ms(watched.page, page_file.as_uri()) for _ in range(loads)]
            search = _search_ms(watched.page, "lighthouse")
            watched.page.evaluate("document.getElementById('clear').click()")
            frames = scroll_frames(watched.page)
            assert watched.errors == [] and watched.remote == [], (watched.errors, watched.remote)
        print(f"first cards: median {statistics.median(firsts):.0f} ms over {loads} loads "
              f"(min {min(firsts):.0f}, max {max(firsts):.0f})")
        print(f"search 'lighthouse' over {jobs} jobs: {search:.0f} ms to redrawn cards")
        print(f"scrolling 300 frames x 400 px: frame p50 {frames['p50']:.1f} ms, p95 "
              f"{frames['p95']:.1f} ms, max {frames['max']:.1f} ms; {frames['cards']:.0f} "
              "cards drawn by then")


if __name__ == "__main__":
    main(sys.argv[1:])
