"""Start, inspect, cancel and terminate sagas through the Workflows Executions API (the seed's Python API).

``execute_saga`` validates and normalizes exactly like the ``start_saga`` function, then starts one
execution of the saga workflow with the normalized request as its argument, labelled
``saga_id=<saga id>``. Starting is idempotent per saga id, and two racing starts leave one execution
running: ``saga_orchestrator.executions`` (the adapter both this façade and start_saga use) says how.

Stopping a saga, two ways (``saga`` is a saga id or an execution name; ``reason`` is required text):

- ``cancel_saga`` asks the saga to stop: it sends ``{"action": "cancel", "reason", "by", "at"}`` to the
  execution's callback endpoint (``saga_orchestrator.callbacks``). The workflow stops going forward,
  compensates every done step and publishes one result with ``cause: "cancelled"``.
- ``terminate_saga`` is the hard stop: an Executions API cancel. Nothing is compensated, effects stay in
  place, and a step call already queued in Cloud Tasks may still reach its participant once (its
  outcome goes unheard). The sweeper (``saga_orchestrator.sweeper``) then publishes a ``failed`` result
  with ``cause: "terminated"`` for it.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from saga_orchestrator.clients import ClientFactory, default_factory
from saga_orchestrator.errors import FieldError, InvalidRequestError, SagaNotRunningError
from saga_orchestrator.executions import WorkflowExecutions
from saga_orchestrator.logging import get_logger, log_context
from saga_orchestrator.model import SagaRequest
from saga_orchestrator.ports import SagaStatus, StartOutcome
from saga_orchestrator.settings import Settings
from saga_orchestrator.times import utc_now_iso
from saga_orchestrator.validation import validate_request

if TYPE_CHECKING:
    from saga_orchestrator.callbacks import ExecutionCallbacks

__all__ = ["SagaOrchestrator", "SagaStatus", "StartOutcome"]

log = get_logger("saga_orchestrator.operator")
RUNNING_STATES = ("ACTIVE", "QUEUED")


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
        self.executions = WorkflowExecutions(self._clients.executions, self.workflow_path)
        self._callbacks = callbacks

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

    def get_saga_status(self, execution_name: str) -> SagaStatus:
        return self.executions.status(execution_name)

    def cancel_saga(self, saga: str, *, reason: str) -> str:
        """Ask a running saga to stop and undo what it did; returns its execution name.

        The saga compensates every done step and publishes one result with ``cause: "cancelled"``
        (asynchronously: watch ``saga-results``). Raises ``SagaNotFoundError`` for an unknown saga,
        ``SagaNotRunningError`` for one that ended (nothing is sent then), ``CancelDeliveryError`` when
        the message could not be delivered. The caller needs ``workflows.callbacks.send`` and
        ``workflows.callbacks.list``.
        """
        text = _reason(reason)
        status = self._running(saga)
        callbacks = self._operator_callbacks()
        body = {"action": "cancel", "reason": text, "by": callbacks.identity(), "at": utc_now_iso()}
        callbacks.send(status.execution_name, body)
        with log_context(saga_id=status.saga_id or ""):
            log.info("saga cancel sent", execution=status.execution_name, reason=text, by=body["by"])
        return status.execution_name

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
            raise SagaNotRunningError(saga, status.execution_name, "(ended before the cancel)") from None
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

    def _running(self, saga: str) -> SagaStatus:
        status = self.executions.resolve(saga)
        if status.state not in RUNNING_STATES:
            raise SagaNotRunningError(saga, status.execution_name, status.state)
        return status


def _reason(reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidRequestError([FieldError("reason", "is required: say why the saga is stopped")])
    return reason.strip()
