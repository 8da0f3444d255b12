"""A finished batch to look at: a real `run` over all five models against the simulator,
plus a prompt written to break a page and a job that fails, in one output folder.

Two runs of one manifest, as a user grows a batch: the first runs the five models and the
hostile prompt; then the simulator fails every new job and the manifest gains `doomed`,
which the second run submits (the others are done) and which fails for good. The folder
then holds succeeded and failed jobs, posters, report.html, results.csv and README.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers.runs import (
    ALL_MODELS,
    background_simulator,
    make_assets,
    run_cli,
    write_manifest,
)

HOSTILE_PROMPT = ('</script><script>window.__pwned = 1</script> <img src=x onerror="window.'
                  '__pwned = 2"> <b>not bold</b> & "quoted" <!-- comment')
HOSTILE: dict[str, Any] = {"id": "hostile", "model": "model_kling-v3-t2v-4k",
                           "params": {"prompt": HOSTILE_PROMPT, "duration": "5"}}
DOOMED: dict[str, Any] = {"id": "doomed", "model": "model_kling-v3-t2v-4k",
                          "params": {"prompt": "A job the API fails", "duration": "5"}}
SUCCEEDED = [job["id"] for job in ALL_MODELS] + ["hostile"]


def simulated_batch(folder: Path) -> Path:
    """Run the batch described above into `folder / "out"`; the output folder."""
    make_assets(folder / "assets")
    out = folder / "out"
    with pytest.MonkeyPatch.context() as env, background_simulator() as sim:
        env.setenv("SCENARIO_SDK_API_KEY", "test-key")
        env.setenv("SCENARIO_SDK_API_SECRET", "test-secret")
        env.delenv("SCENARIO_SDK_JWT", raising=False)
        manifest = write_manifest(folder, [*ALL_MODELS, HOSTILE])
        assert run_cli(manifest, out, sim) == 0
        sim.set_faults(job_failure=1.0)
        write_manifest(folder, [*ALL_MODELS, HOSTILE, DOOMED])
        assert run_cli(manifest, out, sim, "--auto-retries", "0") == 1
    return out
