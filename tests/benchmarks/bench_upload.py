"""Upload throughput: kling-batch's verified uploader vs a bare client loop, side by side.

    python tests/benchmarks/bench_upload.py                      # 20 files x 64 MiB
    python tests/benchmarks/bench_upload.py --files 8 --mib 32 --rounds 3
    python tests/benchmarks/bench_upload.py --files 2 --mib 1024 --rounds 1   # memory: flat?

One moto S3 server (a subprocess on loopback) serves both. Each measured round runs every
mode in a child process of its own (peak RSS from os.wait4), uploading the same files to
its own fresh bucket, `--parallel` files at a time:

- kling-batch: `ObjectStore.upload_file` — multipart (8 MiB parts, 4 in flight), a SHA-256
  per part, the whole file re-hashed while read, CompleteMultipartUpload with the parts'
  checksums, then HEAD with ChecksumMode to verify size, metadata and checksum;
- bare: the same aiobotocore client and part size and parts in flight (each part read on a
  worker thread), no checksums and no verification: CreateMultipartUpload, UploadPart,
  CompleteMultipartUpload.

Prints MiB/s per mode and round, the median and best of the rounds, peak RSS, and the
ratio kling-batch / bare of the medians (the modes alternate within each round, so load
from elsewhere on the machine falls on both). moto is a Python server on the same cores:
the figures are of the client's overhead over the same server, not of S3.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

MiB = 1024 * 1024
SIZES: dict[Path, int] = {}  # file -> bytes, known before the uploads start


def make_files(folder: Path, count: int, size: int) -> list[tuple[Path, str]]:
    files = []
    block = os.urandom(MiB)
    for i in range(count):
        path = folder / f"video-{i:03d}.mp4"
        digest = hashlib.sha256()
        with path.open("wb") as fh:
            for n in range(size // MiB):
                piece = bytes([i, n % 256]) + block[2:]  # distinct content per file and MiB
                fh.write(piece)
                digest.update(piece)
        files.append((path, digest.hexdigest()))
    return files


async def upload_ours(env: dict[str, str], bucket: str, files: list[tuple[Path, str]],
                      parallel: int) -> None:
    import anyio

    from runner.objstore import S3Config, S3Location, open_store

    async with open_store(S3Config.from_env(env), S3Location(bucket, "bench")) as store:
        limit = anyio.Semaphore(parallel)

        async def one(path: Path, sha: str) -> None:
            async with limit:
                await store.upload_file(store.location.key(f"videos/{path.name}"), path,
                                        size=SIZES[path], sha256=sha)

        async with anyio.create_task_group() as tg:
            for path, sha in files:
                tg.start_soon(one, path, sha)


async def upload_bare(env: dict[str, str], bucket: str, files: list[tuple[Path, str]],
                      parallel: int) -> None:
    from aiobotocore.session import get_session

    from runner.objstore import S3Config, UploadTuning, client_config

    config, tuning = S3Config.from_env(env), UploadTuning()
    async with get_session().create_client(
            "s3", endpoint_url=config.endpoint_url, region_name=config.region,
            aws_access_key_id=config.access_key_id,
            aws_secret_access_key=config.secret_access_key,
            config=client_config(config, tuning)) as client:
        files_limit = asyncio.Semaphore(parallel)

        async def one(path: Path) -> None:
            async with files_limit:
                key = f"bench/videos/{path.name}"
                created = await client.create_multipart_upload(Bucket=bucket, Key=key)
                upload_id = created["UploadId"]
                parts_limit = asyncio.Semaphore(tuning.parts_in_flight)
                size = SIZES[path]

                def read(offset: int) -> bytes:
                    with path.open("rb") as fh:
                        fh.seek(offset)
                        return fh.read(tuning.part_size)

                async def part(number: int, offset: int) -> dict[str, object]:
                    async with parts_limit:
                        data = await asyncio.to_thread(read, offset)  # off the loop, too
                        reply = await client.upload_part(Bucket=bucket, Key=key,
                                                         UploadId=upload_id,
                                                         PartNumber=number, Body=data)
                        return {"PartNumber": number, "ETag": reply["ETag"]}

                parts = await asyncio.gather(*(
                    part(n, off) for n, off in enumerate(range(0, size, tuning.part_size), 1)))
                await client.complete_multipart_upload(
                    Bucket=bucket, Key=key, UploadId=upload_id,
                    MultipartUpload={"Parts": list(parts)})  # type: ignore[typeddict-item]

        await asyncio.gather(*(one(path) for path, _ in files))


def child(args: argparse.Namespace) -> None:
    """One mode, one round: upload every file, print the seconds taken (JSON)."""
    listing = json.loads(Path(args.files_json).read_text())
    files = [(Path(p), sha) for p, sha in listing]
    SIZES.update((path, path.stat().st_size) for path, _ in files)
    env = json.loads(os.environ["BENCH_AWS_ENV"])
    upload = upload_ours if args.mode == "kling-batch" else upload_bare
    started = time.perf_counter()
    asyncio.run(upload(env, args.bucket, files, args.parallel))
    print(json.dumps({"seconds": time.perf_counter() - started}))


def measure(mode: str, bucket: str, files_json: Path, env: dict[str, str],
            parallel: int) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of one child uploading every file."""
    command = [sys.executable, __file__, "--child", mode, "--bucket", bucket,
               "--files-json", str(files_json), "--parallel", str(parallel)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, cwd=REPO,
                               env={**os.environ, "BENCH_AWS_ENV": json.dumps(env),
                                    "PYTHONPATH": str(REPO)})
    assert process.stdout is not None
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"{mode} child failed (status {status})")
    return float(json.loads(out)["seconds"]), usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--parallel", type=int, default=2, help="files uploaded at once")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", choices=["kling-batch", "bare"])
    parser.add_argument("--bucket")
    parser.add_argument("--files-json")
    parser.add_argument("--mode")
    args = parser.parse_args()
    if args.child:
        args.mode = args.child
        child(args)
        return
    from tests.helpers.s3 import start_moto

    total = args.files * args.mib
    with tempfile.TemporaryDirectory() as tmp, start_moto() as moto:
        folder = Path(tmp)
        files = make_files(folder, args.files, args.mib * MiB)
        files_json = folder / "files.json"
        files_json.write_text(json.dumps([[str(p), sha] for p, sha in files]))
        print(f"{args.files} files x {args.mib} MiB = {total} MiB, {args.parallel} files at "
              f"once, moto {moto.endpoint}")
        times: dict[str, list[float]] = {"bare": [], "kling-batch": []}
        rss: dict[str, float] = {}
        s3 = moto.client()
        for round_ in range(1, args.rounds + 1):
            for mode in ("bare", "kling-batch"):
                bucket = moto.new_bucket(f"bench-{mode}")
                seconds, peak = measure(mode, bucket, files_json, moto.env(), args.parallel)
                times[mode].append(seconds)
                rss[mode] = max(rss.get(mode, 0.0), peak)
                print(f"round {round_}  {mode:<12} {seconds:7.2f} s  {total / seconds:7.1f} "
                      f"MiB/s  peak RSS {peak:6.1f} MiB")
                for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
                    s3.delete_object(Bucket=bucket, Key=obj["Key"])  # moto keeps it in RAM
        print()
        median = {mode: statistics.median(values) for mode, values in times.items()}
        for mode in ("bare", "kling-batch"):
            print(f"{mode:<12} median {total / median[mode]:7.1f} MiB/s  best "
                  f"{total / min(times[mode]):7.1f} MiB/s  peak RSS {rss[mode]:6.1f} MiB")
        print(f"ratio kling-batch / bare throughput (medians): "
              f"{median['bare'] / median['kling-batch']:.2f}")

if __name__ == "__main__":
    main()
