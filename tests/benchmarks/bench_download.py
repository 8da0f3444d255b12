"""Benchmark download_asset: throughput and peak memory over N large files (a script).

    python tests/benchmarks/bench_download.py --files 8 --size-mb 256 --concurrency 4

Serves one file of `--size-mb` from a local aiohttp "CDN" (streamed from disk, so the
server's memory does not count against us), and an API answering `GET /v1/assets/{id}`
with its signed URL. Downloads `--files` copies concurrently into a temporary folder and
reports MB/s and the process's peak RSS: if streaming works, the peak stays near the
baseline whatever the file size. The server runs in the same process, so the figure is an
upper bound for the client alone.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import anyio
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

# Imported after the path fix, so the script runs from a checkout without installing.
from runner.api import Credentials, ScenarioClient, download_asset

_CHUNK = 1 << 20


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_source(folder: Path, size: int) -> tuple[Path, str]:
    """A file of `size` pseudo-random bytes, written in chunks; returns (path, sha256)."""
    path = folder / "source.bin"
    digest = hashlib.sha256()
    block = os.urandom(_CHUNK)
    with path.open("wb") as handle:
        for start in range(0, size, _CHUNK):
            piece = block[: min(_CHUNK, size - start)]
            digest.update(piece)
            handle.write(piece)
    return path, digest.hexdigest()


async def start_servers(source: Path, size: int) -> tuple[web.AppRunner, str]:
    """One runner serving both the CDN file and the asset API; returns (runner, base url)."""

    async def asset(request: web.Request) -> web.Response:
        base = f"http://{request.host}"
        body = {
            "id": request.match_info["id"],
            "status": "success",
            "url": f"{base}/cdn/file.bin?sig=1",
            "properties": {"size": size},
        }
        return web.json_response({"asset": body})

    async def cdn(request: web.Request) -> web.FileResponse:
        return web.FileResponse(source)

    app = web.Application()
    app.router.add_get("/v1/assets/{id}", asset)
    app.router.add_get("/cdn/file.bin", cdn)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


async def bench(files: int, size_mb: int, concurrency: int, chunk_kb: int) -> None:
    size = size_mb * 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="bench-download-") as tmp:
        folder = Path(tmp)
        source, expected = make_source(folder, size)
        runner, base = await start_servers(source, size)
        baseline = peak_rss_mb()
        limiter = anyio.CapacityLimiter(concurrency)
        async with aiohttp.ClientSession() as session:
            client = ScenarioClient(session, f"{base}/v1", Credentials("Bearer bench"))

            async def one(n: int) -> None:
                async with limiter:
                    got = await download_asset(
                        client,
                        session,
                        f"asset_{n}",
                        folder / "out" / f"{n}.bin",
                        chunk_size=chunk_kb * 1024,
                    )
                assert got.sha256 == expected and got.bytes == size
                (folder / "out" / f"{n}.bin").unlink()  # keep the disk use to one file each

            started = time.perf_counter()
            async with anyio.create_task_group() as group:
                for n in range(files):
                    group.start_soon(one, n)
            elapsed = time.perf_counter() - started
        await runner.cleanup()
    total_mb = files * size / 1e6
    print(f"files={files} size={size_mb} MiB concurrency={concurrency} chunk={chunk_kb} KiB")
    print(f"downloaded {total_mb:.0f} MB in {elapsed:.2f} s = {total_mb / elapsed:.0f} MB/s")
    print(f"peak RSS {peak_rss_mb():.0f} MiB (baseline before downloads {baseline:.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--chunk-kb", type=int, default=64)
    args = parser.parse_args()
    asyncio.run(bench(args.files, args.size_mb, args.concurrency, args.chunk_kb))


if __name__ == "__main__":
    main()
