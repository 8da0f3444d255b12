"""Simulator settings: one frozen dataclass, named fault profiles and their resolution.

Every field has a default suitable for a quick demo. Fault rates are probabilities in 0..1
per decision (see `faults.py` for how a decision is drawn); a profile gives a full set of
rates and `faults` overrides any of them by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

# Each name is one kind of misbehaviour; docs/simulator.md describes what each one does.
FAULT_NAMES: tuple[str, ...] = (
    "rate_limit",  # 429 with retry-after or retry-after-ms; nothing happened
    "server_error",  # 500/502/503 before anything happened (x-should-retry: true or absent)
    "server_error_no_retry",  # 503 with x-should-retry: false; nothing happened
    "conflict",  # 408 or 409 before anything happened (the SDK retries both)
    "reset_before_create",  # connection reset before the request had any effect
    "reset_after_create",  # generate only: the job was created, then the connection reset
    "error_after_create",  # generate only: the job was created, then 500/502/503
    "slow_response",  # the answer is delayed by `slow_seconds`
    "job_failure",  # the job ends in failure, content-policy style (permanent)
    "transient_job_failure",  # the job ends in failure, transient style (submit again)
    "truncated_download",  # the CDN sends fewer bytes than Content-Length, then closes
    "expired_url",  # a signed URL is issued already expired (the CDN answers 403)
    "empty_page",  # a job-list page comes back empty but still carries a token
    "cancel_refused",  # cancel of a custom job is refused with 400, as production may do
)

_FLAKY: Mapping[str, float] = {
    "rate_limit": 0.05,
    "server_error": 0.03,
    "conflict": 0.01,
    "reset_before_create": 0.02,
    "reset_after_create": 0.02,
    "error_after_create": 0.03,
    "slow_response": 0.02,
    "transient_job_failure": 0.03,
    "truncated_download": 0.03,
    "expired_url": 0.03,
    "empty_page": 0.2,
}

_HOSTILE: Mapping[str, float] = {
    "rate_limit": 0.15,
    "server_error": 0.1,
    "server_error_no_retry": 0.03,
    "conflict": 0.03,
    "reset_before_create": 0.05,
    "reset_after_create": 0.05,
    "error_after_create": 0.08,
    "slow_response": 0.05,
    "job_failure": 0.05,
    "transient_job_failure": 0.1,
    "truncated_download": 0.1,
    "expired_url": 0.1,
    "empty_page": 0.4,
    "cancel_refused": 0.5,
}

PROFILES: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {"none": MappingProxyType({}), "flaky": _FLAKY, "hostile": _HOSTILE}
)


def default_schema_dir() -> Path:
    """The repository's `schemas/` folder, else the copy installed inside the package."""
    checkout = Path(__file__).resolve().parents[2]
    # Only a checkout has pyproject.toml beside schemas/; an installed package's parent is
    # site-packages, where an unrelated "schemas" folder could exist.
    if (checkout / "schemas").is_dir() and (checkout / "pyproject.toml").is_file():
        return checkout / "schemas"
    return Path(__file__).resolve().parents[1] / "_schemas"


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything that shapes one simulator; immutable, so a run can be reproduced."""

    seed: int = 0
    profile: str = "none"
    faults: Mapping[str, float] = field(default_factory=dict)
    job_seconds: tuple[float, float] = (0.3, 1.5)
    assets_per_job: tuple[int, int] = (1, 1)
    slow_seconds: float = 3.0
    retry_after_seconds: float = 0.5
    credit_limit: int | None = None
    max_parallel_jobs: int | None = None
    team_limits_readable: bool = True
    cancel_custom_jobs: bool = True
    url_ttl_seconds: float = 900.0
    upload_validation_seconds: float = 0.05
    assumed_video_seconds: float = 5.0
    video_width: int = 320
    video_height: int = 180
    video_fps: int = 12
    video_seconds: float = 2.0
    video_pad_bytes: int = 0
    api_key: str | None = None
    api_secret: str | None = None
    bearer: str | None = None
    schema_dir: Path | None = None
    work_dir: Path | None = None
    state_file: Path | None = None  # load and keep the state here (`persist.py`)
    host: str = "127.0.0.1"
    port: int = 0
    cdn_port: int = 0

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}; choose one of {sorted(PROFILES)}")
        check_fault_rates(self.faults)
        low, high = self.job_seconds
        if not 0 <= low <= high:
            raise ValueError(f"job_seconds must be 0 <= min <= max, got {self.job_seconds}")
        check_limits(self)

    def fault_rates(self) -> dict[str, float]:
        """The effective rate of every fault: the profile's, overridden by `faults`."""
        rates = dict.fromkeys(FAULT_NAMES, 0.0)
        rates.update(PROFILES[self.profile])
        rates.update(self.faults)
        return rates

    def resolved_schema_dir(self) -> Path:
        """Where the model schemas are read from."""
        return self.schema_dir if self.schema_dir is not None else default_schema_dir()


def check_fault_rates(rates: Mapping[str, float]) -> None:
    """Raise ValueError for an unknown fault name or a rate outside 0..1."""
    for name, rate in rates.items():
        if name not in FAULT_NAMES:
            raise ValueError(f"unknown fault {name!r}; known faults: {', '.join(FAULT_NAMES)}")
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault {name!r}: rate {rate} is not within 0..1")


def check_limits(config: SimulatorConfig) -> None:
    """Raise ValueError for a cap, a delay or a video shape the simulator cannot serve."""
    if config.max_parallel_jobs is not None and config.max_parallel_jobs < 1:
        raise ValueError(f"max_parallel_jobs must be at least 1, got {config.max_parallel_jobs}")
    if config.retry_after_seconds <= 0:
        raise ValueError(f"retry_after_seconds must be positive, got {config.retry_after_seconds}")
    sizes = (config.video_width, config.video_height)
    if any(size < 2 or size % 2 for size in sizes):
        raise ValueError(f"video size must be even and at least 2x2 (H.264 4:2:0), got {sizes}")
    if config.video_fps < 1 or config.video_seconds <= 0:
        raise ValueError("video_fps must be at least 1 and video_seconds positive")
