"""The floor: the requests kling-batch needs per job, made by a bare aiohttp loop.

    python tests/benchmarks/floor_aiohttp.py MANIFEST -o OUT --base-url URL --concurrency N \
        --list-interval SECONDS

Per job: one `POST /v1/generate/custom/{model}`; its share of the `GET /v1/jobs?types=custom&
updatedAfter=…` listings that one loop makes every `--list-interval` for every job in flight;
its share of the `POST /v1/assets/get-bulk` that follows each listing for the jobs it saw
succeed; one CDN download. Once per run: `GET /v1/teams/{id}/limits`, so that at most
min(N, parallelCustomJobs) jobs are in flight. No ledger, no checks, no retries beyond what
the job needs to get done: a 429 waits for its hint; a POST whose answer is lost is looked
for in the next listing, then posted again; a transient job failure is submitted once more
(as kling-batch's default `--auto-retries 1`); an expired URL gets a fresh one; a cut
download is fetched again. Credentials: SCENARIO_SDK_API_KEY / SCENARIO_SDK_API_SECRET.
Prints one JSON line {"done", "failed", "places"}; exit 0 when every job is done.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml

TERMINAL = frozenset({"success", "failure", "canceled"})
RETRIED = frozenset({408, 409, 429, 500, 502, 503, 504})
OVERLAP = 1.0  # seconds the listing cursor stays behind the newest update it saw
TEAM = "team_benchmark"  # the simulator takes any team id
ATTEMPTS = 12


class Refused(Exception):
    """The API said no for good, or kept failing."""


def canonical(body: Any) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, tz=UTC).isoformat(timespec="milliseconds")


def unix(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def hint(headers: Any) -> float:
    """The server's delay hint in seconds (retry-after-ms first, as the SDK reads them)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return min(max(float(headers[name]) * scale, 0.0), 60.0)
        except (KeyError, ValueError):
            continue
    return 0.25


class Api:
    """JSON requests with the account's Basic credentials."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session, self.base = session, base.rstrip("/")
        key = os.environ["SCENARIO_SDK_API_KEY"], os.environ["SCENARIO_SDK_API_SECRET"]
        self.auth = {"Authorization": "Basic " + base64.b64encode(":".join(key).encode()).decode()}

    async def once(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any, float]:
        """(status, JSON body, delay hint); status 0 when the connection failed."""
        try:
            async with self.session.request(method, f"{self.base}/{path}", headers=self.auth,
                                            **kwargs) as reply:
                body = await reply.json(content_type=None)
                return reply.status, body, hint(reply.headers)
        except (TimeoutError, aiohttp.ClientError, ValueError):
            return 0, None, 0.25

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """A request that has no effect (a read), repeated while the answer invites it."""
        for _ in range(ATTEMPTS):
            status, body, delay = await self.once(method, path, **kwargs)
            if 200 <= status < 300:
                return body
            if status and status not in RETRIED:
                raise Refused(f"{method} {path}: {status} {body}")
            await asyncio.sleep(delay)
        raise Refused(f"{method} {path}: still failing")


@dataclass
class Lost:
    """A generate whose answer was lost: its job is looked for in the next full listing."""

    since: float
    verdict: asyncio.Future[str | None]


@dataclass
class Floor:
    api: Api
    interval: float
    out: Path
    places: asyncio.Semaphore
    downloads: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(4))
    watches: dict[str, asyncio.Future[tuple[dict[str, Any], dict[str, str]]]] = field(
        default_factory=dict)
    lost: dict[str, Lost] = field(default_factory=dict)
    owned: set[str] = field(default_factory=set)
    cursor: float = field(default_factory=lambda: time.time() - 60)

    def watch(self, job_id: str) -> None:
        self.owned.add(job_id)
        self.watches[job_id] = asyncio.get_running_loop().create_future()

    async def follow(self) -> None:
        """List, adopt, resolve; forever (cancelled when every job is done)."""
        while True:
            await asyncio.sleep(self.interval)
            if self.watches or self.lost:
                try:
                    await self.round()
                except Refused as exc:
                    print(f"listing failed: {exc}", file=sys.stderr)

    async def round(self) -> None:
        judged = list(self.lost.values())  # a verdict needs a listing begun after the loss
        after = min([self.cursor, *(lost.since - OVERLAP - 1 for lost in judged)])
        jobs = await self.listing(after)
        finished = []
        for job in jobs:
            self.adopt(job)
            waiting = self.watches.get(job["jobId"])
            if waiting is not None and not waiting.done() and job["status"] in TERMINAL:
                finished.append((waiting, job))
        wanted = [a for _, job in finished if job["status"] == "success"
                  for a in job["metadata"].get("assetIds", [])]
        urls = await self.bulk(wanted) if wanted else {}
        for waiting, job in finished:
            waiting.set_result((job, urls))
        for lost in judged:
            if not lost.verdict.done():
                lost.verdict.set_result(None)

    async def listing(self, after: float) -> list[dict[str, Any]]:
        params = {"pageSize": "100", "types": "custom", "updatedAfter": iso(after)}
        jobs: list[dict[str, Any]] = []
        while True:
            page = await self.api.call("GET", "jobs", params=params)
            jobs += page["jobs"]
            if not page.get("nextPaginationToken"):
                break
            params = {**params, "paginationToken": page["nextPaginationToken"]}
        if jobs:
            self.cursor = max(self.cursor, max(unix(j["updatedAt"]) for j in jobs) - OVERLAP)
        return jobs

    def adopt(self, job: dict[str, Any]) -> None:
        lost = self.lost.get(canonical(job["metadata"].get("input")))
        if lost is None or lost.verdict.done() or job["jobId"] in self.owned:
            return
        if unix(job["createdAt"]) >= lost.since - OVERLAP:
            self.watch(job["jobId"])
            lost.verdict.set_result(job["jobId"])

    async def bulk(self, asset_ids: list[str]) -> dict[str, str]:
        urls: dict[str, str] = {}
        for start in range(0, len(asset_ids), 200):
            chunk = asset_ids[start:start + 200]
            try:
                reply = await self.api.call("POST", "assets/get-bulk", json={"assetIds": chunk})
            except Refused:
                continue  # each job asks again for its own URL
            urls.update({asset["id"]: asset["url"] for asset in reply["assets"]})
        return urls

    async def submit(self, model: str, body: dict[str, Any]) -> str | None:
        """The created (or adopted) job's id; None when the API refused the request."""
        losses = 0
        while losses < ATTEMPTS:
            status, reply, delay = await self.api.once("POST", f"generate/custom/{model}",
                                                       json=body)
            if status == 200:
                self.watch(reply["job"]["jobId"])
                return str(reply["job"]["jobId"])
            if status == 429:  # a rate limit or the plan's cap: nothing was created
                await asyncio.sleep(delay)
            elif status and status not in RETRIED:
                return None
            else:
                adopted = await self.look_for(canonical(body))
                if adopted is not None:
                    return adopted
                losses += 1
        return None

    async def look_for(self, key: str) -> str | None:
        lost = Lost(time.time(), asyncio.get_running_loop().create_future())
        self.lost[key] = lost
        try:
            return await lost.verdict
        finally:
            del self.lost[key]

    async def run_job(self, spec: dict[str, Any]) -> bool:
        for _ in range(2):  # one more submission after a transient failure
            async with self.places:
                job_id = await self.submit(spec["model"], spec["params"])
                if job_id is None:
                    return False
                job, urls = await self.watches[job_id]
                del self.watches[job_id]
            if job["status"] == "success":
                return await self.fetch(spec["id"], job["metadata"]["assetIds"][0], urls)
            if "temporary" not in (job["metadata"].get("hint") or ""):
                return False
        return False

    async def fetch(self, name: str, asset_id: str, urls: dict[str, str]) -> bool:
        url = urls.get(asset_id)
        for _ in range(ATTEMPTS):
            if url is None:
                url = (await self.bulk([asset_id])).get(asset_id)
                if url is None:
                    continue
            async with self.downloads:
                status, data = await download(self.api.session, url)
            if data is not None:
                await asyncio.to_thread((self.out / f"{name}.mp4").write_bytes, data)
                return True
            if status == 403:
                url = None  # expired: ask for a fresh one
        return False


async def download(session: aiohttp.ClientSession, url: str) -> tuple[int, bytes | None]:
    try:
        async with session.get(url) as reply:
            return reply.status, (await reply.read()) if reply.status == 200 else None
    except (TimeoutError, aiohttp.ClientError):
        return 0, None  # cut short: fetch it again


async def plan_cap(api: Api) -> int | None:
    try:
        reply = await api.call("GET", f"teams/{TEAM}/limits")
    except Refused:
        return None
    return int(reply["limits"]["parallelCustomJobs"])


async def main(args: argparse.Namespace, specs: list[dict[str, Any]], out: Path) -> int:
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        api = Api(session, args.base_url)
        places = min(args.concurrency, await plan_cap(api) or args.concurrency)
        floor = Floor(api, args.list_interval, out, asyncio.Semaphore(places))
        follower = asyncio.create_task(floor.follow())
        results = await asyncio.gather(*(floor.run_job(spec) for spec in specs))
        follower.cancel()
    done = sum(results)
    print(json.dumps({"done": done, "failed": len(specs) - done, "places": places}))
    return 0 if done == len(specs) else 1


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--list-interval", type=float, default=0.5)
    args = parser.parse_args()
    specs = yaml.safe_load(Path(args.manifest).read_text())["jobs"]
    out = Path(args.output) / "videos"
    out.mkdir(parents=True, exist_ok=True)
    return asyncio.run(main(args, specs, out))


if __name__ == "__main__":
    sys.exit(cli())
