"""Deduplicated saga starts: a *claim* object per saga id in Cloud Storage, created if absent, atomically.

Why Cloud Storage: a bucket needs no VPC and no instance, an object upload with ``ifGenerationMatch=0``
succeeds for exactly one of any number of racing writers, and every later change is a compare-and-swap on
the object's generation and metageneration (https://cloud.google.com/storage/docs/request-preconditions,
https://cloud.google.com/storage/docs/metadata#generation-number). It needs no list call (the Executions
API allows 1,200 list requests a minute per location, https://cloud.google.com/workflows/quotas), and
claims are kept for good, so a saga id starts once, ever.

The claim is the object ``<first 6 hex of sha256(saga id)>/<saga id>`` (a hashed prefix spreads the
writes over key ranges, https://cloud.google.com/storage/docs/request-rate), empty, whose custom metadata
says: ``token`` (who holds it), ``claimed_at`` (epoch seconds), ``state`` (``claimed`` or
``abandoned``) and, once recorded, ``execution`` (the saga's execution). The protocol, for one delivery:

1. **Claim**: upload the object with ``ifGenerationMatch=0``. Success: this delivery is the winner.
2. The winner **creates the execution, then records its name** in the claim: a metadata patch with
   ``ifGenerationMatch``/``ifMetagenerationMatch`` of the version it read. The *first* execution recorded
   is the saga's; a start whose record comes second cancels the execution it created and answers with the
   recorded one.
3. A **loser** (412 on the upload) reads the claim: a recorded execution is its answer (a duplicate).
4. A claim **in progress** (no execution yet, fresh) is read again after 0.05, 0.1, 0.2, 0.4 and 0.8 s;
   still in progress, ``StartInProgressError`` (retryable) is raised, so the event is redelivered.
5. **Takeover**: a claim older than ``TAKEOVER_SECONDS`` whose winner recorded nothing (it crashed), or
   one its winner marked ``abandoned``, is taken over with a compare-and-swap patch (new token and time).
   The new holder first looks for an execution labelled with the saga id (the one Executions *list* call
   of the protocol, made only here): one that the crashed winner created is adopted and recorded, else it
   creates one. Two takers cannot both succeed: the second patch fails its precondition.
6. **A refused creation** (a 4xx answer from Workflows: nothing was created) deletes the claim (with its
   generation and metageneration as preconditions) so a redelivery starts afresh; any other failure
   (timeout, 5xx: the execution may exist) marks the claim ``abandoned`` for an immediate takeover, which
   looks before it creates. The error propagates, so the event is redelivered.

What holds: one execution per saga id, except when a winner stalls longer than ``TAKEOVER_SECONDS``
between its claim and its record while another delivery takes over; then both may create one, the
second to record cancels its own, and a step call the cancelled one sent carries the same
``Idempotency-Key`` as the winner's. Requests: a first start makes 2 writes and no read; a duplicate, 1
write (refused) and 1 read. Each object takes at most one write and one metadata update a second
(https://cloud.google.com/storage/quotas), which a start stays within. The requests are made by
``objects.ObjectStore`` (the JSON API on urllib3: a start's two writes cost less than half the CPU they
cost through google-cloud-storage).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from saga_orchestrator.errors import SagaError
from saga_orchestrator.logging import get_logger
from saga_orchestrator.model import SagaRequest
from saga_orchestrator.objects import ObjectStore, StoredObject
from saga_orchestrator.ports import HttpCallError, StartOutcome

log = get_logger("saga_orchestrator.starts")

# Longer than twice start_saga's timeout (DEPLOY_FUNCTION_TIMEOUT_SECONDS, 300 s): a winner still inside
# its invocation is never overtaken.
TAKEOVER_SECONDS = 600.0
# A loser's pauses before it reads a claim in progress again (1.55 s in all), then it gives up.
WAITS = (0.05, 0.1, 0.2, 0.4, 0.8)
# Seconds each attempt of a Cloud Storage request may take (``objects.RETRY_DEADLINE`` bounds the retries).
REQUEST_TIMEOUT = 30.0
RECORD_ATTEMPTS = 8
CLAIMED, ABANDONED = "claimed", "abandoned"


class StartInProgressError(SagaError, RuntimeError):
    """Another delivery holds the saga's claim and has not recorded an execution yet. Retryable: the
    event should be redelivered, and the next delivery finds the execution (or takes the claim over)."""

    retryable = True

    def __init__(self, saga_id: str, claimed_at: float) -> None:
        self.saga_id = saga_id
        self.claimed_at = claimed_at
        super().__init__(
            f"saga {saga_id!r} is being started by another delivery (claimed at {claimed_at:.3f})"
        )


@dataclass(frozen=True)
class Claim:
    saga_id: str
    token: str
    claimed_at: float
    state: str
    execution: str | None
    generation: int
    metageneration: int


class SagaStarts(Protocol):
    """Starting sagas once per saga id (``saga_orchestrator.executions.WorkflowExecutions``)."""

    def start(self, request: SagaRequest) -> StartOutcome:
        """The saga's execution, started now (``created``) or before. Raises ``StartInProgressError``
        while another start of the same saga id is under way."""
        ...


class StartTarget(Protocol):
    """The executions side of one start (``saga_orchestrator.executions`` implements it)."""

    def create(self) -> str:
        """Start a new execution of the saga; its name."""
        ...

    def existing(self) -> str | None:
        """An execution already labelled with the saga id, if any (a list call: takeovers only)."""
        ...

    def cancel(self, execution_name: str) -> None:
        """Stop an execution this start created and must not keep."""
        ...


def object_name(saga_id: str) -> str:
    return f"{hashlib.sha256(saga_id.encode()).hexdigest()[:6]}/{saga_id}"


def _claim_of(saga_id: str, stored: StoredObject) -> Claim:
    fields = stored.metadata
    return Claim(
        saga_id=saga_id,
        token=str(fields.get("token", "")),
        claimed_at=float(fields.get("claimed_at") or 0.0),
        state=str(fields.get("state", CLAIMED)),
        execution=fields.get("execution") or None,
        generation=stored.generation,
        metageneration=stored.metageneration,
    )


class StartClaims:
    """The claims in ``bucket``. ``objects`` builds (or returns the shared) ``ObjectStore``."""

    def __init__(
        self,
        objects: Callable[[], ObjectStore],
        bucket: str,
        *,
        takeover_seconds: float = TAKEOVER_SECONDS,
        waits: tuple[float, ...] = WAITS,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._objects = objects
        self.bucket = bucket
        self._takeover_seconds = takeover_seconds
        self._waits = waits
        self._clock = clock
        self._sleep = sleep

    def read(self, saga_id: str) -> Claim | None:
        stored = self._objects().get(self.bucket, object_name(saga_id), timeout=REQUEST_TIMEOUT)
        return None if stored is None else _claim_of(saga_id, stored)

    def recorded(self, saga_id: str) -> str | None:
        """The execution recorded for ``saga_id``, if its claim has one."""
        claim = self.read(saga_id)
        return claim.execution if claim else None

    def start(self, saga_id: str, target: StartTarget) -> StartOutcome:
        """The saga's execution: started by this call (``created``), or the one another start recorded.
        Raises ``StartInProgressError`` while another start holds the claim, and what ``target`` raises."""
        token = uuid.uuid4().hex
        claim = self._create(saga_id, token)
        if claim is not None:
            return self._run(claim, target, adopt=False)
        found: Claim | None = None
        took_over = False  # a takeover was tried: a claim found with our token may be one taken over
        for pause in (*self._waits, None):
            found = self.read(saga_id)
            if found is None:  # deleted by a start that Workflows refused: claim afresh
                claim = self._create(saga_id, token)
                if claim is not None:
                    return self._run(claim, target, adopt=False)
                continue
            if found.execution:
                return StartOutcome(found.execution, created=False)
            if found.token == token:  # our upload or takeover succeeded, its answer was lost and retried
                return self._run(found, target, adopt=took_over)
            if found.state == ABANDONED or self._clock() - found.claimed_at >= self._takeover_seconds:
                took_over = True
                taken = self._take_over(found, token)
                if taken is not None:
                    return self._run(taken, target, adopt=True)
                continue
            if pause is not None:
                self._sleep(pause)
        raise StartInProgressError(saga_id, found.claimed_at if found else 0.0)

    def _run(self, claim: Claim, target: StartTarget, *, adopt: bool) -> StartOutcome:
        """As the claim's holder: find (after a takeover) or create the execution, then record it."""
        name = target.existing() if adopt else None
        adopted = name is not None
        if name is None:
            try:
                name = target.create()
            except Exception as error:
                self._give_up(claim, error)
                raise
        recorded = self._record(claim, name)
        if recorded == name:
            return StartOutcome(name, created=not adopted)
        if not adopted:
            log.warning("another start recorded first: cancelling this one", execution=name, kept=recorded)
            target.cancel(name)
        return StartOutcome(recorded, created=False)

    def _record(self, claim: Claim, name: str) -> str:
        """Record ``name`` unless an execution is recorded already; the execution recorded."""
        current: Claim | None = claim
        for _ in range(RECORD_ATTEMPTS):
            if current is not None and current.execution:
                return current.execution
            try:
                if current is None:  # the claim was released meanwhile: claim it again, recorded
                    self._upload(claim.saga_id, claim.token, execution=name)
                else:
                    self._patch(current, {"execution": name})
                return name
            except _precondition_failed():
                current = self.read(claim.saga_id)
        raise StartInProgressError(claim.saga_id, claim.claimed_at)

    def _create(self, saga_id: str, token: str) -> Claim | None:
        from google.api_core import exceptions

        try:
            return self._upload(saga_id, token)
        except _precondition_failed():
            return None
        except exceptions.NotFound:  # the bucket: the object cannot be missing on a create
            raise SagaError(
                f"the start claims bucket {self.bucket!r} does not exist (SAGA_START_BUCKET; deploy.sh creates it)"
            ) from None

    def _upload(self, saga_id: str, token: str, execution: str | None = None) -> Claim:
        fields = {"saga_id": saga_id, "token": token, "claimed_at": f"{self._clock():.6f}", "state": CLAIMED}
        metadata = fields if execution is None else {**fields, "execution": execution}
        # ifGenerationMatch=0: only if no live object has this name. A lost answer is retried; the
        # retry then fails its precondition and the claim is recognised by its token.
        stored = self._objects().insert(
            self.bucket, object_name(saga_id), metadata, if_generation_match=0, timeout=REQUEST_TIMEOUT
        )
        return _claim_of(saga_id, stored)

    def _take_over(self, claim: Claim, token: str) -> Claim | None:
        fields = {"token": token, "claimed_at": f"{self._clock():.6f}", "state": CLAIMED}
        try:
            taken = self._patch(claim, fields)
        except _precondition_failed():
            return None
        log.warning("took over a saga's start claim", saga_id=claim.saga_id, previous_state=claim.state)
        return taken

    def _patch(self, claim: Claim, fields: dict[str, str]) -> Claim:
        """Change the claim's metadata if it is still the version read (compare-and-swap)."""
        stored = self._objects().patch_metadata(
            self.bucket,
            object_name(claim.saga_id),
            fields,
            if_generation_match=claim.generation,
            if_metageneration_match=claim.metageneration,
            timeout=REQUEST_TIMEOUT,
        )
        return _claim_of(claim.saga_id, stored)

    def _give_up(self, claim: Claim, error: Exception) -> None:
        """After a failed creation: release the claim when nothing was created, else mark it abandoned.
        Best effort: should this fail too, the claim is taken over after ``TAKEOVER_SECONDS``."""
        from google.api_core import exceptions
        from google.auth import exceptions as auth_exceptions

        refused = isinstance(error, exceptions.ClientError) and not isinstance(error, exceptions.Cancelled)
        try:
            if refused:
                self._objects().delete(
                    self.bucket,
                    object_name(claim.saga_id),
                    if_generation_match=claim.generation,
                    if_metageneration_match=claim.metageneration,
                    timeout=REQUEST_TIMEOUT,
                )
            else:
                self._patch(claim, {"state": ABANDONED})
        except (exceptions.GoogleAPIError, auth_exceptions.GoogleAuthError, HttpCallError) as failure:
            log.warning("could not give the start claim up", saga_id=claim.saga_id, error=str(failure))


def _precondition_failed() -> type[Exception]:
    from google.api_core import exceptions

    return exceptions.PreconditionFailed
