"""The manifest: YAML in, validated `JobSpec`s out (format in docs/manifest.md).

    version: 1
    defaults:                 # optional, merged under every job
      model: model_kling-v2-1-pro
      params: {duration: "5"}
    settings:                 # optional → RunSettings; CLI flags override
      concurrency: 4
      modelConcurrency: {model_kling-v3-t2v-4k: 1}
      submitsPerSecond: 2
      downloadConcurrency: 4
      jobTimeout: 1800        # seconds
      maxFailures: "10%"      # or a count: 25
      budget: 5000            # compute units
    jobs:
      - id: knight-fog        # optional; [A-Za-z0-9._-]{1,128}, unique ignoring case
        model: model_kling-v2-1-pro
        params: {prompt: A knight walks through fog, startImage: images/knight.png}
      - id: city              # one template, many jobs: city-0001, city-0002, ...
        prompts: [Neon rain, Dawn fog]
        repeat: 2             # city-0001, city-0001-r2, city-0002, city-0002-r2
        params: {startImage: images/city.png}
      - id: rows
        promptsFile: prompts.csv   # .csv: a header row, columns fill params; else one per line

Defaults merge shallowly, per top-level param: a job's `elements` replaces the default's whole
list, and a job's `key: null` removes a default. A job without `id` gets one derived from its
content (`v2-1-pro-3f9a1c2b7d`). Loading reports every problem at once (`ManifestError`).
"""

from __future__ import annotations

from runner.manifest.loader import Manifest, load_manifest
from runner.manifest.settings import flag_value, max_failures, model_limit_flag

__all__ = ["Manifest", "flag_value", "load_manifest", "max_failures", "model_limit_flag"]
