"""The simulator's cost model: creative units per second of video, per model.

The real prices are not published in the SDK; these figures are plausible and fixed so that
tests and `plan --estimate` give stable answers. The length of a video is the request's
`duration`, else the sum of `multiPrompt` shot durations, else (motion control) the driving
video's duration when the simulator knows it, else `assumed_seconds`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

CU_PER_SECOND: Mapping[str, int] = {
    "model_kling-v2-1-pro": 20,
    "model_kling-v3-t2v-4k": 60,
    "model_kling-v2-6-motion-control": 15,
    "model_kling-o1-video-reference": 30,
    "model_kling-v3-pro-motion-control": 40,
}
DEFAULT_CU_PER_SECOND = 25


def _seconds(value: Any) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def _multi_prompt_seconds(shots: Any) -> float | None:
    if not isinstance(shots, list) or not shots:
        return None
    lengths = [
        _seconds(shot.get("duration")) if isinstance(shot, Mapping) else None for shot in shots
    ]
    if any(length is None for length in lengths):
        return None
    return sum(length for length in lengths if length is not None)


def video_seconds(
    model_id: str,
    body: Mapping[str, Any],
    asset_duration: Callable[[str], float | None],
    assumed_seconds: float,
) -> float:
    """Seconds of video that a request asks for (see the module docstring for the rules)."""
    from_duration = _seconds(body.get("duration"))
    if from_duration is not None:
        return from_duration
    from_shots = _multi_prompt_seconds(body.get("multiPrompt"))
    if from_shots is not None:
        return from_shots
    driving = body.get("video")
    if "motion-control" in model_id and isinstance(driving, str):
        known = asset_duration(driving)
        if known is not None:
            return known
    return assumed_seconds


def cost(model_id: str, seconds: float) -> int:
    """Creative units charged for `seconds` of video from `model_id` (rounded up)."""
    rate = CU_PER_SECOND.get(model_id, DEFAULT_CU_PER_SECOND)
    return math.ceil(rate * seconds)
