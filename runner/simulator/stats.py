"""Live accounting of what clients did to the simulator, for tests and benchmarks.

The counters are exact: every handler updates them synchronously on the event loop. Jobs in
flight are computed from the clock (a job's end time is known when it is created), so the
maximum only needs checking when a job is created: it can only grow at those instants.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runner.simulator.state import SimState


def canonical_json(body: Any) -> str:
    """The canonical request JSON shared with the client for fingerprints."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_fingerprint(model_id: str, body: Mapping[str, Any]) -> str:
    """sha256 hex of the model id immediately followed by the body's canonical JSON (UTF-8)."""
    return hashlib.sha256((model_id + canonical_json(body)).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class JobSummary:
    """One created job as the accounting reports it.

    `started` and `ended` are seconds since the simulator started, on its clock: when the
    job was created and when it turns terminal (for a job still in flight, its scheduled
    end, which only a cancel can bring forward). `ended - started` is the time the job
    held one of the account's places: the simulated duration a schedule is made of.
    """

    job_id: str
    fingerprint: str
    model: str
    status: str
    started: float = 0.0
    ended: float = 0.0

    @property
    def seconds(self) -> float:
        """How long the job is (or was) in flight."""
        return self.ended - self.started


@dataclass
class SimulatorStats:
    """Counters of one simulator. `jobs_in_flight` and `jobs` are computed when read."""

    state: SimState
    clock: Callable[[], float]
    epoch: float = 0.0  # the clock's reading when the simulator started
    submissions_by_fingerprint: Counter[str] = field(default_factory=Counter)
    generate_attempts_by_fingerprint: Counter[str] = field(default_factory=Counter)
    requests_by_endpoint: Counter[str] = field(default_factory=Counter)
    faults_injected: Counter[str] = field(default_factory=Counter)
    cdn_authorization_headers: list[str] = field(default_factory=list)
    cdn_requests: int = 0
    bytes_served: int = 0
    max_jobs_in_flight: int = 0
    creative_units_charged: int = 0
    dry_runs: int = 0
    cap_refusals: int = 0

    @property
    def jobs_in_flight(self) -> int:
        """Jobs created and not yet terminal, now."""
        return self.state.jobs_in_flight(self.clock())

    @property
    def jobs(self) -> list[JobSummary]:
        """Every created job, oldest first, with its status now."""
        now = self.clock()
        ordered = sorted(self.state.jobs.values(), key=lambda job: job.seq)
        return [
            JobSummary(job.job_id, job.fingerprint, job.model_id, job.snapshot(now).status,
                       job.created - self.epoch, job.ends_at() - self.epoch)
            for job in ordered
        ]

    def job_created(self, fingerprint: str, cost: int) -> None:
        """Account for a job that now exists (and is billed)."""
        self.submissions_by_fingerprint[fingerprint] += 1
        self.creative_units_charged += cost
        self.max_jobs_in_flight = max(self.max_jobs_in_flight, self.jobs_in_flight)

    def to_json(self) -> dict[str, Any]:
        """The accounting as a JSON-ready dict (served at `GET /_sim/stats`)."""
        return {
            "submissionsByFingerprint": dict(self.submissions_by_fingerprint),
            "generateAttemptsByFingerprint": dict(self.generate_attempts_by_fingerprint),
            "requestsByEndpoint": dict(self.requests_by_endpoint),
            "faultsInjected": dict(self.faults_injected),
            "cdnAuthorizationHeaders": list(self.cdn_authorization_headers),
            "cdnRequests": self.cdn_requests,
            "bytesServed": self.bytes_served,
            "jobsInFlight": self.jobs_in_flight,
            "maxJobsInFlight": self.max_jobs_in_flight,
            "jobsCreated": self.state.created_jobs,
            "creativeUnitsCharged": self.creative_units_charged,
            "dryRuns": self.dry_runs,
            "capRefusals": self.cap_refusals,
            "jobs": [
                {"jobId": j.job_id, "fingerprint": j.fingerprint, "model": j.model,
                 "status": j.status, "started": round(j.started, 6),
                 "ended": round(j.ended, 6)}
                for j in self.jobs
            ],
        }
