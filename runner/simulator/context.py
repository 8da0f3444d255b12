"""What the API and CDN handlers share: settings, state, accounting, clock and URL signing.

The CDN lives on another port (another origin), like a real signed-URL host. URLs carry
`expires` (unix seconds) and `signature` (HMAC-SHA256 of path and expiry with a key made per
simulator), so a tampered or stale URL is refused with 403.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import anyio
from aiohttp import web

from runner.simulator import faults
from runner.simulator.catalog import Catalog
from runner.simulator.config import SimulatorConfig
from runner.simulator.state import Asset, SimState
from runner.simulator.stats import SimulatorStats
from runner.simulator.video import VideoSpec, encode_clip


def sign(key: bytes, path: str, expires: int) -> str:
    """The signature of a CDN `path` valid until unix time `expires`."""
    return hmac.new(key, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()


def signature_ok(key: bytes, path: str, expires: str, signature: str, now_unix: float) -> bool:
    """True when `signature` matches and `expires` (unix seconds) is still in the future."""
    if not expires.isdigit():
        return False
    good = hmac.compare_digest(sign(key, path, int(expires)), signature)
    return good and int(expires) > now_unix


def iso_ms(unix: float) -> str:
    """ISO 8601 UTC with milliseconds and a Z, as the API writes dates."""
    moment = datetime.fromtimestamp(unix, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class SimContext:
    """One simulator's shared pieces; handlers reach it through the aiohttp app."""

    config: SimulatorConfig
    state: SimState
    stats: SimulatorStats
    clock: Callable[[], float]
    catalog: Catalog
    work_dir: Path
    rates: dict[str, float]
    epoch_unix: float
    epoch_mono: float
    cdn_url: str = ""
    changes: int = 0  # requests that may have changed the state (for `persist`)
    signing_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    _locks: dict[str, anyio.Lock] = field(default_factory=dict)

    def unix(self, mono: float | None = None) -> float:
        """Wall-clock seconds for a monotonic time (default: now)."""
        return self.epoch_unix + ((self.clock() if mono is None else mono) - self.epoch_mono)

    def iso(self, mono: float | None = None) -> str:
        """The API date string for a monotonic time (default: now)."""
        return iso_ms(self.unix(mono))

    def fires(self, name: str, key: str, attempt: int = 0) -> bool:
        """Whether fault `name` happens for this key and attempt, and count it if so."""
        hit = faults.fires(self.rates, self.config.seed, name, key, attempt)
        if hit:
            self.stats.faults_injected[name] += 1
        return hit

    def signed_url(self, path: str, ttl: float | None = None) -> tuple[str, str]:
        """A signed CDN URL for `path` and its expiry date (ISO), `ttl` seconds from now."""
        expires = int(self.unix() + (self.config.url_ttl_seconds if ttl is None else ttl))
        signature = sign(self.signing_key, path, expires)
        return f"{self.cdn_url}{path}?expires={expires}&signature={signature}", iso_ms(expires)

    def asset_url(self, asset: Asset) -> str:
        """A signed download URL for `asset`; some are issued already expired (`expired_url`)."""
        attempt = self.state.next_attempt(f"url:{asset.asset_id}")
        ttl = -1.0 if self.fires("expired_url", asset.asset_id, attempt) else None
        return self.signed_url(f"/files/{asset.asset_id}/{asset.name}", ttl)[0]

    def lock(self, key: str) -> anyio.Lock:
        """The lock that serialises work on `key` (one encode or import at a time)."""
        return self._locks.setdefault(key, anyio.Lock())

    async def materialize(self, asset: Asset) -> Path:
        """The asset's file, encoding an output video on first use (off the event loop)."""
        async with self.lock(f"asset:{asset.asset_id}"):
            if asset.path is None:
                path = self.work_dir / f"{asset.asset_id}.mp4"
                spec = VideoSpec(
                    width=self.config.video_width,
                    height=self.config.video_height,
                    fps=self.config.video_fps,
                    seconds=self.config.video_seconds,
                    pad_bytes=self.config.video_pad_bytes,
                )
                info = await anyio.to_thread.run_sync(encode_clip, path, spec, asset.asset_id)
                asset.properties.update(
                    size=info.size, width=info.width, height=info.height,
                    duration=info.duration, frameRate=info.fps, nbFrames=info.frames,
                    codecName="h264",
                )
                asset.path = path
            return asset.path


CONTEXT: web.AppKey[SimContext] = web.AppKey("sim_context", SimContext)
