"""The fake Scenario API (and its download "CDN"): the embedded default and the test bed.

It shares no code with `runner/api/client.py`, only the model schema files, so tests of the
client against it are a real contract check. See docs/simulator.md.
"""

from __future__ import annotations

from runner.simulator.config import FAULT_NAMES, PROFILES, SimulatorConfig
from runner.simulator.server import Simulator, start_simulator
from runner.simulator.stats import JobSummary, SimulatorStats, request_fingerprint

__all__ = [
    "FAULT_NAMES",
    "PROFILES",
    "JobSummary",
    "Simulator",
    "SimulatorConfig",
    "SimulatorStats",
    "request_fingerprint",
    "start_simulator",
]
