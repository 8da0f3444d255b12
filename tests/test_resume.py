"""What resume does with each job: a table over ledger states, files and flags."""

from __future__ import annotations

from typing import Any

import pytest

from runner.batch import Action, changed_fields, changed_inputs, decide
from runner.domain import JobState
from runner.ledger import AssetRecord, InputFile, JobRecord

MODEL = "model_kling-v2-1-pro"
PARAMS: dict[str, Any] = {"prompt": "A knight walks through fog", "duration": "5"}
FILE = AssetRecord("asset_1", "videos/a.mp4", "0" * 64, 10)


def rec(state: JobState, **kw: Any) -> JobRecord:
    base: dict[str, Any] = {"model": MODEL, "params": dict(PARAMS), "attempt": 1}
    if state is not JobState.PENDING:
        base["job_id"] = "job_1"
    base.update(kw)
    return JobRecord(id="a", state=state, **base)


SUCCEEDED_DONE = rec(JobState.SUCCEEDED, asset_ids=("asset_1",), assets=(FILE,))
SUCCEEDED_MISSING = rec(JobState.SUCCEEDED, asset_ids=("asset_1", "asset_2"), assets=(FILE,))
INTENT = rec(JobState.PENDING, unresolved_intent=True)
NOT_SUBMITTED = rec(JobState.PENDING, unresolved_intent=False, error="402")


@pytest.mark.parametrize(
    ("record", "files_ok", "retry_failed", "expected"),
    [
        # never seen, or pending again after a "not now" answer
        (None, True, False, Action.SUBMIT),
        (None, False, True, Action.SUBMIT),
        (JobRecord(id="a"), True, False, Action.SUBMIT),
        (NOT_SUBMITTED, True, False, Action.SUBMIT),
        # an intent (or an unknown POST) without a jobId: reconcile first, whatever the flags
        (INTENT, True, False, Action.RECONCILE),
        (INTENT, False, True, Action.RECONCILE),
        (rec(JobState.PENDING, unresolved_intent=True, error="reset"), True, True,
         Action.RECONCILE),
        # in flight
        (rec(JobState.SUBMITTED), True, False, Action.POLL),
        (rec(JobState.RUNNING), True, True, Action.POLL),
        (rec(JobState.RUNNING, timed_out=True), False, False, Action.POLL),
        (rec(JobState.SUBMITTED, timed_out=True), True, True, Action.POLL),
        # succeeded
        (SUCCEEDED_DONE, True, False, Action.SKIP),
        (SUCCEEDED_DONE, True, True, Action.SKIP),
        (SUCCEEDED_DONE, False, False, Action.DOWNLOAD),  # a file vanished or is corrupt
        (SUCCEEDED_MISSING, True, False, Action.DOWNLOAD),  # one asset never downloaded
        (rec(JobState.SUCCEEDED, asset_ids=("asset_1",)), True, False, Action.DOWNLOAD),
        # failed, rejected or canceled: held unless retried
        (rec(JobState.FAILED, error="nsfw"), True, False, Action.HOLD),
        (rec(JobState.FAILED, error="nsfw"), True, True, Action.SUBMIT),
        (rec(JobState.FAILED, job_id=None, error="422"), True, False, Action.HOLD),
        (rec(JobState.FAILED, job_id=None, error="422"), False, True, Action.SUBMIT),
        (rec(JobState.CANCELED), True, False, Action.HOLD),
        (rec(JobState.CANCELED), True, True, Action.SUBMIT),
    ],
)  # fmt: skip
def test_decide_unchanged_jobs(
    record: JobRecord | None, files_ok: bool, retry_failed: bool, expected: Action
) -> None:
    decision = decide(MODEL, PARAMS, record, files_ok=files_ok, retry_failed=retry_failed)
    assert decision.action is expected
    assert decision.changed == ()
    assert decision.reason


@pytest.mark.parametrize(
    ("record", "reason_has"),
    [
        (None, "not submitted"),
        (INTENT, "unknown"),
        (rec(JobState.RUNNING), "job_1"),
        (SUCCEEDED_DONE, "1 file(s)"),
        (SUCCEEDED_MISSING, "download"),
        (rec(JobState.FAILED), "--retry-failed"),
        (rec(JobState.CANCELED), "canceled"),
    ],
)
def test_decision_reason_explains_the_action(record: JobRecord | None, reason_has: str) -> None:
    assert reason_has in decide(MODEL, PARAMS, record, files_ok=True).reason


@pytest.mark.parametrize(
    ("model", "params", "expected"),
    [
        (MODEL, PARAMS, ()),
        ("model_kling-v3-t2v-4k", PARAMS, ("model",)),
        (MODEL, {**PARAMS, "prompt": "A knight rides"}, ("params.prompt",)),
        (MODEL, {**PARAMS, "duration": 5}, ("params.duration",)),  # "5" and 5 differ
        (MODEL, {**PARAMS, "cfgScale": 0.5}, ("params.cfgScale",)),  # added
        (MODEL, {"prompt": PARAMS["prompt"]}, ("params.duration",)),  # removed
        (MODEL, {**PARAMS, "prompt": "x", "aspect": "16:9"}, ("params.aspect", "params.prompt")),
        ("other", {}, ("model", "params.duration", "params.prompt")),
    ],
)
def test_changed_fields(model: str, params: dict[str, Any], expected: tuple[str, ...]) -> None:
    assert changed_fields(model, params, rec(JobState.SUBMITTED)) == expected


@pytest.mark.parametrize(
    "record",
    [None, JobRecord(id="a"), rec(JobState.SUBMITTED, params=None)],
)
def test_changed_fields_without_a_recorded_intent_is_empty(record: JobRecord | None) -> None:
    assert changed_fields("other", {"x": 1}, record) == ()


def test_changed_fields_ignores_model_when_none_was_recorded() -> None:
    assert changed_fields("other", PARAMS, rec(JobState.SUBMITTED, model=None)) == ()


@pytest.mark.parametrize(
    "record",
    [
        rec(JobState.SUBMITTED),
        rec(JobState.RUNNING, timed_out=True),
        SUCCEEDED_DONE,
        SUCCEEDED_MISSING,
        rec(JobState.FAILED),
        rec(JobState.CANCELED),
    ],
)
@pytest.mark.parametrize(
    ("model", "params", "fields"),
    [
        ("model_kling-v3-t2v-4k", PARAMS, ("model",)),
        (MODEL, {**PARAMS, "prompt": "new"}, ("params.prompt",)),
        ("m2", {"prompt": "new"}, ("model", "params.duration", "params.prompt")),
    ],
)
def test_changed_jobs_are_refused_unless_redone(
    record: JobRecord, model: str, params: dict[str, Any], fields: tuple[str, ...]
) -> None:
    refused = decide(model, params, record, files_ok=True, retry_failed=True)
    assert refused.action is Action.CHANGED
    assert refused.changed == fields
    assert ", ".join(fields) in refused.reason
    assert "--redo" in refused.reason

    redone = decide(model, params, record, files_ok=True, redo=True)
    assert redone.action is Action.SUBMIT
    assert redone.changed == fields


def test_a_changed_job_with_an_unresolved_intent_is_refused() -> None:
    decision = decide(MODEL, {**PARAMS, "prompt": "new"}, INTENT, files_ok=True)
    assert (decision.action, decision.changed) == (Action.CHANGED, ("params.prompt",))


def test_changes_do_not_matter_for_a_job_that_was_never_sent() -> None:
    for record in (None, NOT_SUBMITTED):
        decision = decide("other", {"prompt": "new"}, record, files_ok=True)
        assert decision.action is Action.SUBMIT
        assert decision.changed == ()


def test_redo_of_a_changed_job_with_an_unresolved_intent_reconciles_first() -> None:
    decision = decide(MODEL, {**PARAMS, "prompt": "new"}, INTENT, files_ok=True, redo=True)
    assert decision.action is Action.RECONCILE


# --- the content of local inputs is part of the job ----------------------------------------

KNIGHT = InputFile("params.startImage", "assets/knight.png", "a" * 64, "asset_k")
WITH_INPUT = rec(JobState.SUCCEEDED, asset_ids=("asset_1",), assets=(FILE,), inputs=(KNIGHT,))


@pytest.mark.parametrize(
    ("current", "record", "expected"),
    [
        ({"params.startImage": ("assets/knight.png", "a" * 64)}, WITH_INPUT, ()),
        ({"params.startImage": ("assets/knight.png", "b" * 64)}, WITH_INPUT,
         ("params.startImage (new content of assets/knight.png)",)),
        # another path is already a changed param, said once
        ({"params.startImage": ("assets/other.png", "b" * 64)}, WITH_INPUT, ()),
        ({}, WITH_INPUT, ()),  # the field is gone: a changed param too
        ({"params.startImage": ("assets/knight.png", "b" * 64)}, SUCCEEDED_DONE, ()),  # 0.1
        ({"params.startImage": ("assets/knight.png", "b" * 64)}, None, ()),
    ],
)
def test_changed_inputs(
    current: dict[str, tuple[str, str]], record: JobRecord | None, expected: tuple[str, ...]
) -> None:
    assert changed_inputs(current, record) == expected


def test_a_changed_input_makes_a_changed_job() -> None:
    changed = ("params.startImage (new content of assets/knight.png)",)
    held = decide(MODEL, PARAMS, WITH_INPUT, files_ok=True, changed_inputs=changed)
    assert held.action is Action.CHANGED and held.changed == changed
    redone = decide(MODEL, PARAMS, WITH_INPUT, files_ok=True, changed_inputs=changed, redo=True)
    assert redone.action is Action.SUBMIT
