"""Submitting one job: its body, its price, the intent, the POST, and reconciliation of a
lost answer. The submitter owns attempt numbers (one past the job's last intent).

Money is spent at the generate POST, so the order here is fixed: the `intent` record is
durable before the request leaves; the jobId is recorded the moment it arrives (the POST and
that record are shielded from cancellation); a POST whose answer was lost is reconciled
against the job list before anything is posted again. Every outcome is a ledger record and
a frozen `SubmitOutcome`; whether to halt is the scheduler's decision, from the outcome.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import anyio

from runner.batch.book import JobBook
from runner.batch.budget import Budget, OverBudget, Reservation
from runner.batch.control import HaltReason, halt_reason_for
from runner.batch.withdrawals import Withdrawals
from runner.canonical import canonical_json
from runner.clock import Clock
from runner.domain import JobSpec, RemoteJob, Submission
from runner.errors import (
    ApiError,
    LocalWriteError,
    ObjectStoreError,
    OutcomeUnknownError,
    PermanentApiError,
    RateLimitedError,
    TransientApiError,
    UsageError,
)
from runner.ledger import (
    Intended,
    JobRecord,
    NotSubmitted,
    OutcomeLost,
    Rejected,
    Submitted,
)
from runner.reconcile import Held, Intent, Reconciler, ambiguous_intents, body_fingerprint

# How many times one job may be re-posted after reconciliation found nothing.
MAX_REPOSTS = 3
# Pauses (seconds) between attempts to read the job list after a lost answer.
RECONCILE_PAUSES = (5.0, 15.0, 30.0, 60.0, 120.0)

Body = dict[str, Any]


@dataclass(frozen=True, slots=True)
class SubmitOutcome:
    """How a submission ended: the jobId the job now has, or None (nothing created, or
    created-maybe and left for the next run to reconcile); `halt` when the cause of a
    refusal calls for stopping the batch, with `detail` saying why."""

    job_id: str | None = None
    halt: HaltReason | None = None
    detail: str = ""
    busy: bool = False  # refused for capacity (429): nothing created, post it again later
    retry_after: float | None = None  # the server's delay before the next POST, if any


class _Repost(enum.Enum):
    """The POST's answer was lost and the API shows no such job: post again."""

    REPOST = "repost"


@dataclass(frozen=True, slots=True)
class Reattached:
    """A lost POST from an earlier run, looked for: adopted, to post again, or unsure."""

    adopted: Mapping[str, str]  # manifest job id -> the jobId it adopted
    repost: tuple[str, ...]
    unsure: tuple[str, ...]
    halt: HaltReason | None = None
    detail: str = ""


class Generate(Protocol):
    """POST a generate request (`ScenarioClient.generate`): `before_send` runs right before
    each attempt leaves, and what it raises stops the POST unsent."""

    def __call__(
        self, model: str, body: Mapping[str, Any], *,
        before_send: Callable[[], None] | None = None,
    ) -> Awaitable[Submission]: ...


class Submitter:
    """Submits jobs of one batch; each call handles one job from body to jobId."""

    def __init__(
        self,
        *,
        book: JobBook,
        make_body: Callable[[JobSpec], Awaitable[Body]],
        generate: Generate,
        price: Callable[[str, Mapping[str, Any]], Awaitable[float]] | None,
        budget: Budget,
        reconciler: Reconciler,
        may_submit: Callable[[], bool],
        note: Callable[[str], None],
        clock: Clock,
        inputs_of: Callable[[JobSpec, Body], Awaitable[tuple[dict[str, str], ...]]]
        | None = None,
        set_aside: Callable[[JobSpec], Awaitable[None]] | None = None,
        withdrawals: Withdrawals | None = None,
        before_post: Callable[[str], Awaitable[None]] | None = None,
        before_send: Callable[[str], None] | None = None,
    ) -> None:
        self._book = book
        self._withdrawals = withdrawals
        self._before_post = before_post
        self._before_send = before_send
        self._inputs_of = inputs_of
        self._set_aside = set_aside
        self._make_body = make_body
        self._generate = generate
        self._price = price
        self._budget = budget
        self._reconciler = reconciler
        self._may_submit = may_submit
        self._note = note
        self._clock = clock

    async def submit(self, spec: JobSpec) -> SubmitOutcome:
        """Post the job (reconciling a lost answer, re-posting at most MAX_REPOSTS times)."""
        attempt = self._book.next_attempt(spec.id)
        if await self._withdrawn(spec.id):
            return SubmitOutcome()
        try:
            body = await self._make_body(spec)
            inputs = await self._inputs_of(spec, body) if self._inputs_of else ()
        except (ApiError, UsageError) as exc:
            return await self._refused(spec, attempt, exc, what="uploading its files")
        for _ in range(MAX_REPOSTS):
            if not self._may_submit():
                return SubmitOutcome()
            if await self._withdrawn(spec.id, attempt=attempt):
                return SubmitOutcome()
            outcome = await self._once(spec, body, attempt, inputs)
            if outcome is not _Repost.REPOST:
                return outcome
            attempt = self._book.next_attempt(spec.id)
        await self._book.record(NotSubmitted(
            job=spec.id, attempt=attempt,
            error="reconciliation kept finding no job; gave up re-posting"))
        return SubmitOutcome()

    async def _withdrawn(self, job: str, *, attempt: int = 0, intended: bool = False) -> bool:
        """True (and the job recorded `canceled`) when a cancel request names the job; an
        intent already written, or left open by a lost answer, is closed first."""
        if self._withdrawals is None or not self._withdrawals.withdrawn(job):
            return False
        record = self._book.get(job)
        if intended or (record is not None and record.unresolved_intent):
            await self._book.record(NotSubmitted(job=job, attempt=attempt,
                                                 error="canceled before its POST was sent"))
        await self._withdrawals.cancel_locally(job)
        return True

    async def _once(
        self, spec: JobSpec, body: Body, attempt: int, inputs: tuple[dict[str, str], ...]
    ) -> SubmitOutcome | _Repost:
        """Price, reserve and post one attempt."""
        try:
            price = await self._price_of(spec, body)
        except ApiError as exc:
            return await self._refused(spec, attempt, exc, what="pricing it (dry run)")
        try:
            with self._budget.reservation(price) as reservation:
                return await self._post(spec, body, attempt, reservation, inputs)
        except OverBudget as exc:
            return SubmitOutcome(halt=HaltReason.BUDGET, detail=f"{spec.id}: {exc}")
        except LocalWriteError as exc:  # its old video could not be set aside
            return SubmitOutcome(halt=HaltReason.DISK, detail=f"{spec.id}: {exc}")
        except ObjectStoreError as exc:  # the same, in an object store
            return SubmitOutcome(halt=HaltReason.STORE, detail=f"{spec.id}: {exc}")

    async def _price_of(self, spec: JobSpec, body: Body) -> float:
        # Without a budget nothing is reserved, so no dry run is spent on a price.
        if self._budget.limit is None or self._price is None:
            return 0.0
        return await self._price(spec.model, body)

    async def _post(
        self, spec: JobSpec, body: Body, attempt: int, reservation: Reservation,
        inputs: tuple[dict[str, str], ...],
    ) -> SubmitOutcome | _Repost:
        body_json = canonical_json(body)
        async with self._reconciler.holding(body_json, spec.model) as held:
            if self._set_aside is not None:
                await self._set_aside(spec)  # a redo keeps the video it replaces
            ts = self._clock.now_iso()
            await self._book.record(Intended(
                job=spec.id, ts=ts, attempt=attempt, model=spec.model,
                params=dict(spec.params), body=body,
                fingerprint=body_fingerprint(spec.model, body), inputs=inputs))
            # The last look before money is spent: a cancel that came while the intent
            # was being made durable closes it (nothing was sent) instead.
            if await self._withdrawn(spec.id, attempt=attempt, intended=True):
                return SubmitOutcome()
            answer = await self._send(spec, body, attempt, held, reservation)
            if isinstance(answer, OutcomeUnknownError):
                intent = Intent(spec.id, spec.model, body_json, ts)
                return await self._after_lost(spec, intent, attempt, held=held,
                                             reservation=reservation, exc=answer)
        if isinstance(answer, RateLimitedError):
            # Backpressure, not failure: the account holds all it will (or asks us to slow
            # down). Nothing was created; the scheduler posts the job again once a place is
            # free.
            await self._book.record(NotSubmitted(job=spec.id, attempt=attempt,
                                                 error=f"refused for now: {answer}"))
            return SubmitOutcome(busy=True, retry_after=answer.retry_after)
        if isinstance(answer, ApiError):
            return await self._refused(spec, attempt, answer, what="submitting it")
        return SubmitOutcome(job_id=answer)

    async def _send(
        self, spec: JobSpec, body: Body, attempt: int, held: Held, reservation: Reservation
    ) -> str | ApiError:
        """POST and record the jobId; the jobId, or the error the API (or network) gave.

        Shielded from cancellation: once the request may have left, even a hard stop waits
        for its answer and records the jobId, so no paid job is left unrecorded.
        """
        with anyio.CancelScope(shield=True):
            if self._before_post is not None:
                # A shared batch: the runner must still hold the job (FencedError if not),
                # checked as late as possible before money is spent.
                await self._before_post(spec.id)
            try:
                guard = (None if self._before_send is None
                         else partial(self._before_send, spec.id))
                submission = await held.post(
                    lambda: self._generate(spec.model, body, before_send=guard))
            except ApiError as exc:
                return exc
            reservation.settle(submission.cost)
            await self._book.record(Submitted(
                job=spec.id, job_id=submission.job.job_id, model=spec.model,
                attempt=attempt, cost=submission.cost))
        return submission.job.job_id

    async def _after_lost(
        self, spec: JobSpec, intent: Intent, attempt: int, *, held: Held,
        reservation: Reservation, exc: ApiError,
    ) -> SubmitOutcome | _Repost:
        await self._book.record(OutcomeLost(job=spec.id, attempt=attempt, error=str(exc)))
        try:
            found = await self._resolve_patiently(held, intent)
        except ApiError as err:
            # The job may exist: never post it again blindly, and count its price. It stays
            # unknown in the ledger, and the next run looks for it first.
            reservation.spent()
            reason = halt_reason_for(err)
            if reason is not None:
                return SubmitOutcome(halt=reason, detail=str(err))
            self._note(f"{spec.id}: its POST's answer was lost and the job list cannot be "
                       f"read ({err}); a re-run will reconcile it")
            return SubmitOutcome()
        if found is None:
            self._note(f"{spec.id}: no job found after a lost answer; posting again")
            return _Repost.REPOST  # the reservation is given back as its block ends
        reservation.settle(found.cu_cost)
        await self._adopt(spec.id, spec.model, found, attempt)
        return SubmitOutcome(job_id=found.job_id)

    async def _resolve_patiently(self, held: Held, intent: Intent) -> RemoteJob | None:
        """Reconcile, riding out an API outage of a few minutes (the client's own retries
        cover only seconds)."""
        for pause in RECONCILE_PAUSES:
            try:
                return await held.resolve(intent)
            except TransientApiError:
                await self._clock.sleep(pause)
        return await held.resolve(intent)

    async def _adopt(self, job: str, model: str, found: RemoteJob, attempt: int) -> None:
        self._note(f"{job}: adopted {found.job_id} (its POST's answer was lost)")
        await self._book.record(Submitted(
            job=job, job_id=found.job_id, model=model, attempt=attempt,
            cost=found.cu_cost, reconciled=True))

    async def _refused(
        self, spec: JobSpec, attempt: int, exc: ApiError | UsageError, *, what: str
    ) -> SubmitOutcome:
        reason = halt_reason_for(exc)
        if reason is not None:
            await self._book.record(NotSubmitted(job=spec.id, attempt=attempt, error=str(exc)))
            return SubmitOutcome(halt=reason, detail=str(exc))
        if isinstance(exc, PermanentApiError | UsageError):
            status = exc.status if isinstance(exc, PermanentApiError) else None
            await self._book.record(Rejected(
                job=spec.id, attempt=attempt, status=None if status is None else str(status),
                error=f"refused while {what}: {exc}"))
            return SubmitOutcome()
        # Transient and out of retries: nothing was created; the job stays pending.
        await self._book.record(NotSubmitted(job=spec.id, attempt=attempt, error=str(exc)))
        self._note(f"{spec.id}: not submitted ({exc}); a re-run will try again")
        return SubmitOutcome()

    async def reattach(self, lost: Sequence[tuple[JobSpec, JobRecord]]) -> Reattached:
        """Look for the jobs that earlier runs' lost POSTs created, in one listing.

        Adopted jobs are recorded `submitted` (reconciled) and their cost counted; the
        others are to be posted again, except those whose body another model's lost POST
        shares (a listed job does not say its model): those are left for a person.
        """
        intents = [_intent_of(spec, record) for spec, record in lost]
        self._note(f"reconciling {len(intents)} POST(s) whose answer was lost")
        try:
            found = await self._reconciler.resolve(intents)
        except ApiError as exc:
            reason = halt_reason_for(exc)
            if reason is None:
                self._note(f"the job list could not be read ({exc}): the lost POSTs stay "
                           "unknown until a later run reconciles them")
            return Reattached({}, (), (), reason, str(exc))
        unsure = {i.job for i in ambiguous_intents(intents)}
        adopted: dict[str, str] = {}
        repost: list[str] = []
        for spec, record in lost:
            job = found.get(spec.id)
            if job is not None:
                self._budget.count(job.cu_cost)
                await self._adopt(spec.id, spec.model, job, record.attempt)
                adopted[spec.id] = job.job_id
            elif spec.id in unsure:
                self._note(f"{spec.id}: its lost POST has the same body as another model's; "
                           "not adopted, not re-posted — check by hand")
            else:
                repost.append(spec.id)
        return Reattached(adopted, tuple(repost), tuple(sorted(unsure - set(adopted))))


def _intent_of(spec: JobSpec, record: JobRecord) -> Intent:
    if record.body is None:
        raise ValueError(f"{spec.id}: a lost POST without a recorded body")  # never: intents
    return Intent(spec.id, spec.model, canonical_json(record.body), record.intent_ts or "")
