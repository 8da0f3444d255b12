"""A corpus of user mistakes and hostile inputs, each refused with one clear message, exit 2,
no traceback and no request (issue 12). Two families:

- manifests, through `kling-batch validate` (and for some, `run` too): bad settings, prompts
  files with odd line breaks, inputs whose content is not what their name says, paths that
  leave the manifest's folder, blank prompts, CSV problems named after the expanded job;
- `run` flags, checked as the manifest's settings are: non-finite and non-positive numbers,
  unknown models, shares past 100 %.

Folder mistakes (another manifest, another API origin, a read-only folder, a full disk) have
their own tests in tests/test_batch_folder.py and tests/test_disk_failures.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.cli import main
from runner.simulator import Simulator
from tests.helpers.runs import FAST_RUN, background_simulator, t2v_jobs, write_manifest

T2V = "model: model_kling-v3-t2v-4k"


def validate(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`kling-batch validate` of `text` as m.yaml in `tmp_path`: (exit code, all output)."""
    path = tmp_path / "m.yaml"
    path.write_text(text)
    capsys.readouterr()
    code = main(["validate", str(path)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def job(params: str, extra: str = "") -> str:
    return f"version: 1\njobs:\n  - id: a\n    {T2V}\n    params: {params}\n{extra}"


# --- settings: the same rules at validate time as at run time -----------------------------

SETTING_CASES = [
    ("share over 100 %", 'maxFailures: "150%"', "settings.maxFailures: '150%' is not valid"),
    ("share of zero", 'maxFailures: "0%"', "settings.maxFailures: '0%' is not valid"),
    ("zero failures", "maxFailures: 0", "settings.maxFailures: 0 is not valid"),
    ("zero budget", "budget: 0", "settings.budget: 0 is not valid"),
    ("infinite timeout", "jobTimeout: .inf", "settings.jobTimeout: inf is not valid"),
    ("a rate of nan", "submitsPerSecond: .nan", "settings.submitsPerSecond: nan is not valid"),
    ("negative retries", "autoRetries: -1", "settings.autoRetries: -1 is not valid"),
    ("unknown poll mode", "pollMode: sometimes", "settings.pollMode: 'sometimes' is not valid"),
    ("a typo in a model limit", "modelConcurrency: {model_kling-v3-t2v4k: 2}",
     "did you mean 'model_kling-v3-t2v-4k'?"),
]


@pytest.mark.parametrize(("setting", "expected"), [c[1:] for c in SETTING_CASES],
                         ids=[c[0] for c in SETTING_CASES])
def test_bad_settings_are_refused_by_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setting: str, expected: str
) -> None:
    code, out = validate(tmp_path, job("{prompt: hi}", f"settings: {{{setting}}}\n"), capsys)
    assert code == 2 and expected in out and "Traceback" not in out
    assert "m.yaml:6:" in out  # the line of the setting


# --- run flags, checked as their settings are -------------------------------------------

@pytest.fixture(scope="module")
def quiet_simulator() -> Iterator[Simulator]:
    with background_simulator() as sim:
        yield sim


FLAG_CASES = [
    ("budget nan", ["--budget", "nan"], "--budget 'nan' is not valid"),
    ("budget inf", ["--budget", "inf"], "--budget 'inf' is not valid"),
    ("budget zero", ["--budget", "0"], "--budget '0' is not valid"),
    ("negative budget", ["--budget", "-5"], "--budget '-5' is not valid"),
    ("concurrency zero", ["--concurrency", "0"], "--concurrency '0' is not valid"),
    ("concurrency text", ["--concurrency", "many"], "--concurrency 'many' is not valid"),
    ("submit rate nan", ["--submit-rate", "nan"], "--submit-rate 'nan' is not valid"),
    ("job timeout inf", ["--job-timeout", "inf"], "--job-timeout 'inf' is not valid"),
    ("negative auto retries", ["--auto-retries", "-1"], "--auto-retries '-1' is not valid"),
    ("max failures 0%", ["--max-failures", "0%"], "--max-failures '0%' is not valid"),
    ("max failures 150%", ["--max-failures", "150%"], "--max-failures '150%' is not valid"),
    ("unknown model limit", ["--model-concurrency", "foo=2"], "unknown model 'foo'"),
    ("model limit typo", ["--model-concurrency", "model_kling-v3-t2v4k=2"],
     "did you mean 'model_kling-v3-t2v-4k'?"),
    ("model limit zero", ["--model-concurrency", "model_kling-v3-t2v-4k=0"], "0 is not valid"),
    ("model limit shape", ["--model-concurrency", "model_kling-v3-t2v-4k"], "is not MODEL=N"),
    ("poll interval nan", ["--poll-interval", "nan"], "--poll-interval 'nan' is not valid"),
    ("lost grace zero", ["--lost-grace", "0"], "--lost-grace '0' is not valid"),
]


@pytest.mark.usefixtures("api_credentials")
@pytest.mark.parametrize(("flags", "expected"), [c[1:] for c in FLAG_CASES],
                         ids=[c[0] for c in FLAG_CASES])
def test_bad_run_flags_are_refused_before_anything_is_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], quiet_simulator: Simulator,
    flags: list[str], expected: str,
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(1))
    before = sum(quiet_simulator.stats.requests_by_endpoint.values())
    capsys.readouterr()
    code = main(["run", str(manifest), "-o", str(tmp_path / "out"),
                 "--base-url", quiet_simulator.base_url, *FAST_RUN, *flags])
    err = capsys.readouterr().err
    assert code == 2 and expected in err and "Traceback" not in err, err
    assert sum(quiet_simulator.stats.requests_by_endpoint.values()) == before
    assert len(err.strip().splitlines()) == 1


@pytest.mark.usefixtures("api_credentials")
def test_a_bad_setting_is_named_as_the_setting_by_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], quiet_simulator: Simulator
) -> None:
    manifest = write_manifest(tmp_path, t2v_jobs(1), settings={"maxFailures": "150%"})
    capsys.readouterr()
    code = main(["run", str(manifest), "-o", str(tmp_path / "out"),
                 "--base-url", quiet_simulator.base_url, *FAST_RUN])
    err = capsys.readouterr().err
    assert code == 2 and "settings.maxFailures" in err and "--max-failures" not in err


def test_settings_and_flags_share_one_table() -> None:
    from runner.manifest.settings import SETTING_KEYS, SETTINGS

    assert {s.key for s in SETTINGS if s.key} | {"modelConcurrency"} == set(SETTING_KEYS)
    assert all(s.flag.startswith("--") for s in SETTINGS)
