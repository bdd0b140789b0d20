"""Start, inspect, cancel and terminate sagas through the Workflows Executions API (the seed's Python API).

``execute_saga`` validates and normalizes exactly like the ``start_saga`` function, then starts one
execution of the saga workflow with the normalized request as its argument, labelled
``saga_id=<saga id>``. Starting is idempotent per saga id, and two racing starts leave one execution
running: ``saga_orchestrator.executions`` (the adapter both this façade and start_saga use) says how.

Operator verbs (``saga`` is a saga id or an execution name; ``reason`` is required text). Each is
delivered to the running saga as ``{"verb", "step", "reason", "by", "at"}`` through its callback endpoint
(``saga_orchestrator.callbacks``; ``by`` is the caller's identity from its credentials) and recorded in
the result's ``audit`` list:

- ``cancel_saga`` asks the saga to stop: the workflow stops going forward, compensates every done step
  and publishes one result with ``cause: "cancelled"``.
- ``retry_step`` runs again the action a stuck saga (a compensation that failed for good) or a parked
  one (an execute that failed for good, ``on_failure: "park"``) waits on; ``skip_step`` records a stuck
  compensation as done by hand; ``compensate_saga`` gives a parked saga up: it is undone as usual.
  These apply only while the saga waits for a decision; otherwise, or for a step the saga does not
  have, they raise ``VerbNotApplicableError`` and send nothing. The workflow itself ignores a verb that
  names another step than the one it waits on, or ``skip`` while parked / ``compensate`` while stuck
  (the Executions API shows which routine runs, not which of the two waits it is).
- ``terminate_saga`` is the hard stop: an Executions API cancel. Nothing is compensated, effects stay in
  place, and a step call already queued in Cloud Tasks may still reach its participant once (its
  outcome goes unheard). The sweeper (``saga_orchestrator.sweeper``) then publishes a ``failed`` result
  with ``cause: "terminated"`` for it.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import TYPE_CHECKING, Any

from saga_orchestrator.clients import ClientFactory, default_factory
from saga_orchestrator.cloudtasks import TaskQueue
from saga_orchestrator.errors import (
    CancelDeliveryError,
    FieldError,
    InvalidRequestError,
    SagaNotRunningError,
    VerbNotApplicableError,
)
from saga_orchestrator.executions import WorkflowExecutions
from saga_orchestrator.logging import get_logger, log_context
from saga_orchestrator.model import SagaRequest
from saga_orchestrator.ports import SagaStatus, StartOutcome
from saga_orchestrator.sagas import SAGA_STATES, InFlight, SagaView, describe, in_flight, undo_plan
from saga_orchestrator.settings import Settings
from saga_orchestrator.starts import StartClaims
from saga_orchestrator.times import utc_now_iso
from saga_orchestrator.validation import validate_request

if TYPE_CHECKING:
    from saga_orchestrator.callbacks import ExecutionCallbacks

__all__ = ["SagaOrchestrator", "SagaStatus", "SagaView", "StartOutcome"]

log = get_logger("saga_orchestrator.operator")
RUNNING_STATES = ("ACTIVE", "QUEUED")
# The saga workflow's routines that announce and wait for an operator's decision (stuck or parked), and
# the steps of main that call them (a verb sent while the wait is announced waits at the endpoint).
DECISION_ROUTINES = frozenset({"announce", "await_decision"})
DECISION_STEPS = frozenset({"stuck_notice", "stuck_wait", "park_notice", "park_wait"})


class SagaOrchestrator:
    def __init__(
        self,
        project_id: str,
        location: str,
        workflow_name: str,
        *,
        clients: ClientFactory | None = None,
        settings: Settings | None = None,
        callbacks: ExecutionCallbacks | None = None,
    ) -> None:
        self._clients = clients or default_factory()
        base = settings or Settings.from_env(self._clients.env)
        self.settings = dataclasses.replace(
            base, project_id=project_id, location=location, workflow=workflow_name
        )
        self.workflow_path = self.settings.workflow_path
        claims = StartClaims(
            self._clients.objects,
            self.settings.start_bucket,
            takeover_seconds=self.settings.start_takeover_seconds,
        )
        self.executions = WorkflowExecutions(self._clients.executions, self.workflow_path, claims=claims)
        self._callbacks = callbacks

    @property
    def clients(self) -> ClientFactory:
        """The Google clients this orchestrator uses (emulators when the environment names them)."""
        return self._clients

    def execute_saga(
        self,
        steps: list[dict[str, Any]],
        *,
        saga_id: str | None = None,
        deadline_seconds: int | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Validate, then start (or find) the saga's execution; returns the execution name.

        Raises ``InvalidRequestError`` naming every bad field; API errors propagate as
        ``google.api_core.exceptions``.
        """
        data: dict[str, Any] = {"steps": steps}
        if saga_id is not None:
            data["saga_id"] = saga_id
        if deadline_seconds is not None:
            data["deadline_seconds"] = deadline_seconds
        if metadata is not None:
            data["metadata"] = metadata
        request = validate_request(data, self.settings)
        return self.start(request).execution_name

    def find_execution(self, saga_id: str) -> str | None:
        """Name of an execution labelled with ``saga_id`` (newest first), if any."""
        return self.executions.find(saga_id)

    def start(self, request: SagaRequest) -> StartOutcome:
        """Start the validated ``request``, or find the execution already started for its saga id."""
        return self.executions.start(request)

    def create(self, request: SagaRequest) -> StartOutcome:
        """Start a new execution without looking for one first (for a caller that just did), then settle
        a race with another start of the same saga."""
        return self.executions.create(request)

    def first_execution(self, saga_id: str) -> str | None:
        """The first started execution labelled with ``saga_id`` (start time, then name), if any."""
        return self.executions.first(saga_id)

    def get_saga_status(self, saga: str) -> SagaView:
        """The saga ``saga`` (a saga id or an execution name) as a person thinks of it: its own state
        (running, parked, stuck, compensating, succeeded, compensated or failed; the execution's state
        apart) and each step's progress. While it runs, progress comes from its step entries and its
        pending Cloud Task (the attempts so far); once it ended, from its result. Raises
        ``SagaNotFoundError``. The caller needs ``workflows.executions.get``/``list`` and, for a running
        saga, ``cloudtasks.tasks.list`` on the saga queue."""
        return self._view(self.executions.resolve(saga))

    def read_saga(self, saga: str) -> tuple[SagaView, list[dict[str, Any]]]:
        """``get_saga_status`` and, while the saga runs, its ``undo_plan``, from one read of the execution."""
        status = self.executions.resolve(saga)
        view = self._view(status)
        return view, undo_plan(status.argument, view) if view.running else []

    def _view(self, status: SagaStatus) -> SagaView:
        if status.state not in RUNNING_STATES and isinstance(status.result, dict):
            return describe(status, None)
        entries = self._entries(status.execution_name)
        return describe(status, status.argument, entries, self._in_flight(status))

    def list_sagas(
        self, *, status: str | None = None, since: datetime.datetime | None = None, limit: int = 50
    ) -> list[SagaView]:
        """The sagas started at or after ``since`` (UTC), newest first, at most ``limit``, in the state
        ``status`` when given (one of ``sagas.SAGA_STATES``). Steps are left out (see
        ``get_saga_status``); a saga waiting in a routine costs one step-entries read to tell stuck from
        parked."""
        if status is not None and status not in SAGA_STATES:
            raise InvalidRequestError([FieldError("status", f"must be one of {', '.join(SAGA_STATES)}")])
        found: list[SagaView] = []
        for execution in self.executions.listed(filter=_list_filter(status, since), page_size=limit):
            inner = execution.current_step
            entries = self._entries(execution.execution_name) if inner and inner[0] != "main" else []
            view = describe(execution, None, entries)
            if status is None or view.state == status:
                found.append(dataclasses.replace(view, steps=()))
            if len(found) >= limit:
                break
        return found

    def undo_plan(self, saga: str) -> list[dict[str, Any]]:
        """What would be undone, in which order and with which calls, if the saga failed now."""
        status = self.executions.resolve(saga)
        return undo_plan(status.argument, self._view(status))

    def _entries(self, execution: str) -> list[dict[str, Any]]:
        try:
            return self._operator_callbacks().step_entries(execution)
        except Exception as error:  # progress is best effort: the state still comes from the execution
            log.warning(
                "step entries unavailable", execution=execution, error=f"{type(error).__name__}: {error}"
            )
            return []

    def _in_flight(self, status: SagaStatus) -> InFlight | None:
        execution_id = status.execution_name.rsplit("/", 1)[-1]
        queue = TaskQueue(self._clients.tasks, self.settings.queue_path)
        return in_flight(queue.pending(execution_id + "-"), execution_id)

    def cancel_saga(self, saga: str, *, reason: str) -> str:
        """Ask a running saga to stop and undo what it did; returns its execution name.

        The saga compensates every done step and publishes one result with ``cause: "cancelled"``
        (asynchronously: watch ``saga-results``). Raises ``SagaNotFoundError`` for an unknown saga,
        ``SagaNotRunningError`` for one that ended (nothing is sent then), ``CancelDeliveryError`` when
        the message could not be delivered. The caller needs ``workflows.callbacks.send`` and
        ``workflows.callbacks.list``.
        """
        return self._send_verb(saga, "cancel", None, reason)

    def retry_step(self, saga: str, step: str, *, reason: str) -> str:
        """Run again the action of ``step`` that a stuck or parked saga waits on; returns the execution
        name. Raises as ``cancel_saga`` does, and ``VerbNotApplicableError`` when the saga is not
        waiting for a decision or has no such step."""
        return self._send_verb(saga, "retry", step, reason)

    def skip_step(self, saga: str, step: str, *, reason: str) -> str:
        """Record the stuck compensation of ``step`` as done by hand (say how in ``reason``); the saga
        goes on with the other compensations. Raises as ``retry_step`` does."""
        return self._send_verb(saga, "skip", step, reason)

    def compensate_saga(self, saga: str, *, reason: str) -> str:
        """Give a parked saga up: its done steps are compensated as usual. Raises as ``retry_step``."""
        return self._send_verb(saga, "compensate", None, reason)

    def _send_verb(self, saga: str, verb: str, step: str | None, reason: str) -> str:
        text = _reason(reason)
        status = self._running(saga)
        if verb != "cancel":
            self._check_decision(saga, status, verb, step)
        callbacks = self._operator_callbacks()
        body = {"verb": verb, "step": step, "reason": text, "by": callbacks.identity(), "at": utc_now_iso()}
        try:
            callbacks.send(status.execution_name, body)
        except SagaNotRunningError as ended:  # it ended between the status read and the message
            raise SagaNotRunningError(
                saga, status.execution_name, self._ended_state(saga, ended.state)
            ) from None
        except CancelDeliveryError:
            # No Google page says which status a callback of an ended execution answers (404, or a 400,
            # 409 or 412): when the execution has ended by now, say so; otherwise the refusal stands.
            state = self.executions.resolve(saga).state
            if state in RUNNING_STATES:
                raise
            raise SagaNotRunningError(saga, status.execution_name, state) from None
        with log_context(saga_id=status.saga_id or ""):
            log.info(
                f"saga {verb} sent", execution=status.execution_name, step=step, reason=text, by=body["by"]
            )
        return status.execution_name

    def _check_decision(self, saga: str, status: SagaStatus, verb: str, step: str | None) -> None:
        """Refuse a decision the saga cannot take now: a step it does not have, or no decision awaited."""
        if step is not None:
            argument = status.argument or {}
            names = [str(s.get("name")) for s in argument.get("steps") or [] if isinstance(s, dict)]
            if step not in names:
                raise VerbNotApplicableError(
                    saga, verb, f"it has no step {step!r} (its steps: {', '.join(names)})"
                )
        current = status.current_step
        if current is None or (current[0] not in DECISION_ROUTINES and current[1] not in DECISION_STEPS):
            where = f"at workflow step {current[1]!r}" if current else "with no step reported"
            raise VerbNotApplicableError(
                saga, verb, f"it is not waiting for a decision (not stuck nor parked; it runs {where})"
            )

    def terminate_saga(self, saga: str, *, reason: str) -> str:
        """Stop a running saga where it is (Executions API cancel); returns the state after the call.

        Nothing is compensated: effects stay in place, and a step call already queued in Cloud Tasks
        may still reach its participant once. The sweeper publishes a ``failed`` result with
        ``cause: "terminated"`` within its period. Raises as ``cancel_saga`` does.
        """
        from google.api_core import exceptions

        text = _reason(reason)
        status = self._running(saga)
        try:
            state = self.executions.cancel(status.execution_name)
        except exceptions.FailedPrecondition:  # it ended in between
            state = self._ended_state(saga, "(ended before the cancel)")
            raise SagaNotRunningError(saga, status.execution_name, state) from None
        with log_context(saga_id=status.saga_id or ""):
            log.warning("saga terminated", execution=status.execution_name, reason=text)
        return state

    def _operator_callbacks(self) -> ExecutionCallbacks:
        """The callbacks adapter as this caller, built on first use (loads urllib3 and google-auth)."""
        if self._callbacks is None:
            from saga_orchestrator.callbacks import operator_callbacks
            from saga_orchestrator.httpclient import HttpClient

            env = self._clients.env
            self._callbacks = operator_callbacks(env, HttpClient.from_env(env))
        return self._callbacks

    def _ended_state(self, saga: str, otherwise: str) -> str:
        """The state a saga ended in, read again when it ended between a status read and a call."""
        state = self.executions.resolve(saga).state
        return otherwise if state in RUNNING_STATES else state

    def _running(self, saga: str) -> SagaStatus:
        status = self.executions.resolve(saga)
        if status.state not in RUNNING_STATES:
            raise SagaNotRunningError(saga, status.execution_name, status.state)
        return status


def _list_filter(status: str | None, since: datetime.datetime | None) -> str:
    """The Executions API filter that narrows a listing to the executions that can be in ``status``."""
    terms = []
    if status in ("running", "parked", "stuck", "compensating"):
        terms.append('state="ACTIVE"')
    elif status in ("succeeded", "compensated"):
        terms.append('state="SUCCEEDED"')
    if since is not None:
        terms.append(f'startTime>="{since.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}"')
    return " AND ".join(terms)


def _reason(reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidRequestError([FieldError("reason", "is required: say why the saga is stopped")])
    return reason.strip()
