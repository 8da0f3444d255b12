"""The fake Scenario API (and its download "CDN"): the embedded default and the test bed.

It shares no code with `runner/api/client.py`, only the model schema files, so tests of the
client against it are a real contract check. See docs/simulator.md.
"""

from __future__ import annotations

from runner.simulator.auth import authorized
from runner.simulator.config import FAULT_NAMES, PROFILES, SimulatorConfig
from runner.simulator.context import iso_ms, sign, signature_ok
from runner.simulator.server import Simulator, start_simulator
from runner.simulator.state import Job, SimState
from runner.simulator.stats import JobSummary, SimulatorStats, request_fingerprint
from runner.simulator.video import VideoSpec, encode_clip

__all__ = [
    "FAULT_NAMES",
    "PROFILES",
    "Job",
    "JobSummary",
    "SimState",
    "Simulator",
    "SimulatorConfig",
    "SimulatorStats",
    "VideoSpec",
    "authorized",
    "encode_clip",
    "iso_ms",
    "request_fingerprint",
    "sign",
    "signature_ok",
    "start_simulator",
]
