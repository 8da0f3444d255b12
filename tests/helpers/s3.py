"""moto's real S3 server as a subprocess on a free loopback port, for the object-store tests.

`start_moto()` starts `python -m moto.server` on 127.0.0.1, waits until it answers, and
yields a `MotoServer` (its endpoint and the AWS variables that point a client at it); the
process is killed after. The session-scoped `moto` fixture in conftest shares one server;
each test takes its own bucket (`moto.new_bucket()`), so tests never see each other's
objects. Nothing is mocked: the store talks real HTTP to a real S3 implementation.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# Credentials moto accepts (it checks none); never real ones.
TEST_KEY_ID = "AKIAKLINGBATCHTEST01"
TEST_SECRET = "kling-batch-test-secret-not-real"


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class MotoServer:
    """A running moto S3 server: `endpoint` is its root URL (no trailing slash)."""

    endpoint: str
    process: subprocess.Popen[bytes]

    def env(self, endpoint: str | None = None) -> dict[str, str]:
        """The AWS variables of a client of this server (or of `endpoint`, e.g. a proxy in
        front of it)."""
        return {"AWS_ENDPOINT_URL": endpoint or self.endpoint, "AWS_ACCESS_KEY_ID": TEST_KEY_ID,
                "AWS_SECRET_ACCESS_KEY": TEST_SECRET, "AWS_REGION": "us-east-1"}

    def client(self, endpoint: str | None = None, attempts: int = 3):  # type: ignore[no-untyped-def]
        """A plain synchronous boto3 client of the server (for setting up and inspecting),
        or of `endpoint` (a proxy in front of it), making up to `attempts` tries a call."""
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=endpoint or self.endpoint,
                            region_name="us-east-1", aws_access_key_id=TEST_KEY_ID,
                            aws_secret_access_key=TEST_SECRET,
                            config=Config(s3={"addressing_style": "path"},
                                          retries={"total_max_attempts": attempts}))

    def new_bucket(self, stem: str = "test") -> str:
        """Create a bucket with a fresh name; returns the name."""
        name = f"{stem}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


def _wait_ready(endpoint: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {process.returncode} at start")
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto_server did not answer on {endpoint} within {timeout:g}s")


@contextmanager
def start_moto(log: Path | None = None, timeout: float = 60.0) -> Iterator[MotoServer]:
    """moto's S3 server in a subprocess on a free loopback port, killed after the block."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    out = log.open("wb") if log is not None else subprocess.DEVNULL
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_ready(endpoint, process, timeout)
        yield MotoServer(endpoint, process)
    finally:
        process.kill()
        process.wait()
        if log is not None and not isinstance(out, int):
            out.close()
