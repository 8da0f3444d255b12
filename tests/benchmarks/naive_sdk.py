"""The naive script: what a user writes in ten minutes with the official SDK.

    python tests/benchmarks/naive_sdk.py MANIFEST -o OUT --base-url URL --concurrency N

`AsyncScenario` with its defaults (2 retries of 408/409/429/5xx and connection errors,
POST included, after its own backoff or the server's hint), `asyncio.gather` over every job,
`asyncio.Semaphore(N)` around each whole job: generate with the custom-model endpoint,
`jobs.retrieve` every second until the job is terminal, `assets.retrieve`, then a download
of the signed URL with httpx. Any error fails that job, and it is counted. Credentials:
SCENARIO_SDK_API_KEY / SCENARIO_SDK_API_SECRET, as the SDK reads them.
Prints one JSON line {"done", "failed"}; exit 0 when every job is done.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import scenario_sdk
import yaml
from scenario_sdk import AsyncScenario

TERMINAL = {"success", "failure", "canceled"}


async def one_job(client: AsyncScenario, http: httpx.AsyncClient, places: asyncio.Semaphore,
                  spec: dict[str, Any], out: Path) -> bool:
    async with places:
        try:
            reply = await client.generate.run_model(spec["model"], body=spec["params"])
            while True:
                job = (await client.jobs.retrieve(reply.job.job_id)).job
                if job.status in TERMINAL:
                    break
                await asyncio.sleep(1)
            if job.status != "success" or not job.metadata.asset_ids:
                return False
            asset = (await client.assets.retrieve(job.metadata.asset_ids[0])).asset
            video = await http.get(asset.url)
            video.raise_for_status()
            await asyncio.to_thread((out / f"{spec['id']}.mp4").write_bytes, video.content)
            return True
        except (scenario_sdk.APIError, httpx.HTTPError) as exc:
            print(f"{spec['id']}: {type(exc).__name__}: {exc}"[:300], file=sys.stderr)
            return False


async def main(args: argparse.Namespace, specs: list[dict[str, Any]], out: Path) -> int:
    places = asyncio.Semaphore(args.concurrency)
    async with AsyncScenario(base_url=args.base_url) as client, httpx.AsyncClient() as http:
        results = await asyncio.gather(*(one_job(client, http, places, spec, out)
                                         for spec in specs))
    done = sum(results)
    print(json.dumps({"done": done, "failed": len(specs) - done}))
    return 0 if done == len(specs) else 1


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    specs = yaml.safe_load(Path(args.manifest).read_text())["jobs"]
    out = Path(args.output) / "videos"
    out.mkdir(parents=True, exist_ok=True)
    return asyncio.run(main(args, specs, out))


if __name__ == "__main__":
    sys.exit(cli())
