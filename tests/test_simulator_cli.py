"""`kling-batch simulate`: flags, errors, and a real subprocess serving until SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from runner.cli import main
from runner.cli.simulate import config_from_argv


def test_bad_fault_flags_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--fault", "meteor=0.5"]) == 2
    assert "rate_limit" in capsys.readouterr().err
    assert main(["simulate", "--fault", "rate_limit=lots"]) == 2
    assert main(["simulate", "--fault", "rate_limit=3"]) == 2


def test_flags_become_a_config() -> None:
    config = config_from_argv(
        ["--profile", "flaky", "--seed", "9", "--fault", "rate_limit=0", "--job-seconds", "0.1",
         "0.2", "--credit-limit", "5", "--max-parallel-jobs", "3", "--api-key", "k",
         "--api-secret", "s"])
    assert (config.seed, config.profile, config.job_seconds) == (9, "flaky", (0.1, 0.2))
    assert config.fault_rates()["rate_limit"] == 0 and config.fault_rates()["server_error"] > 0
    assert (config.credit_limit, config.max_parallel_jobs) == (5, 3)
    assert (config.api_key, config.api_secret) == ("k", "s")


def test_video_retry_and_limits_flags() -> None:
    config = config_from_argv(
        ["--video-size", "64", "36", "--video-fps", "4", "--video-seconds", "0.5",
         "--retry-after", "0.25", "--no-team-limits"])
    assert (config.video_width, config.video_height, config.video_fps) == (64, 36, 4)
    assert (config.video_seconds, config.retry_after_seconds) == (0.5, 0.25)
    assert config.team_limits_readable is False
    assert config_from_argv([]).team_limits_readable is True


@pytest.mark.parametrize("flags", [["--video-size", "63", "36"], ["--retry-after", "0"],
                                   ["--max-parallel-jobs", "0"], ["--video-fps", "0"]])
def test_unservable_settings_exit_2(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", *flags]) == 2
    assert "must" in capsys.readouterr().err


def test_subprocess_serves_until_sigterm() -> None:
    root = Path(__file__).resolve().parents[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "runner", "simulate", "--port", "0", "--api-key", "k",
         "--api-secret", "s"],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(8)]
        base_url = lines[0].split(" at ")[1].strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        assert "  export SCENARIO_SDK_API_KEY=k\n" in lines
        assert f"  export SCENARIO_BASE_URL={base_url}\n" in lines
        origin = base_url.removesuffix("/v1")
        with urllib.request.urlopen(f"{origin}/_sim/stats", timeout=5) as response:
            assert json.load(response)["jobsCreated"] == 0
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
