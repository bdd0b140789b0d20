"""The Workflows Executions adapter: the executions of the saga workflow, labelled ``saga_id=<saga id>``.

It serves the start_saga function and the seed's ``SagaOrchestrator`` (which adds validation), so both
start a saga the same way.

Starting is idempotent per saga id and makes no Executions *list* call: ``start`` claims the saga id in
Cloud Storage first (``saga_orchestrator.starts``: an atomic create-if-absent, then the execution's name
recorded in the claim), so of any number of racing starts one creates the execution and the others answer
with it. Only a start that takes over the claim of a crashed one lists, to adopt an execution that start
may have created. ``find``, ``first`` and ``resolve`` (operator look-ups, not starts) list.

Google's client libraries are imported on first use, not with this module.
"""

from __future__ import annotations

import contextlib
import datetime
import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from saga_orchestrator.errors import SagaError, SagaNotFoundError
from saga_orchestrator.model import SagaRequest
from saga_orchestrator.ports import SagaStatus, StartOutcome
from saga_orchestrator.starts import StartClaims

if TYPE_CHECKING:
    from google.cloud.workflows.executions_v1 import Execution, ExecutionsClient

LABEL = "saga_id"


class WorkflowExecutions:
    """``client`` builds (or returns the shared) ``ExecutionsClient`` when a call needs it; ``claims``
    (``starts.StartClaims``) are the start claims, needed to start sagas only."""

    def __init__(
        self,
        client: Callable[[], ExecutionsClient],
        workflow_path: str,
        *,
        claims: StartClaims | None = None,
    ) -> None:
        self._client = client
        self.workflow_path = workflow_path
        self._claims = claims

    @property
    def claims(self) -> StartClaims:
        if self._claims is None:
            raise SagaError("this WorkflowExecutions starts no saga: it was built without start claims")
        return self._claims

    def find(self, saga_id: str) -> str | None:
        """Name of an execution labelled with ``saga_id`` (newest first), if any."""
        return next((str(e.name) for e in self._labelled(saga_id, page_size=1)), None)

    def first(self, saga_id: str) -> str | None:
        """The first started execution labelled with ``saga_id`` (start time, then name), if any."""
        found = [
            (e.start_time.timestamp() if e.start_time else 0.0, str(e.name))
            for e in self._labelled(saga_id, page_size=100)
        ]
        return min(found)[1] if found else None

    def start(self, request: SagaRequest) -> StartOutcome:
        """Start the saga's execution, or answer with the one already started for its saga id
        (``created=False``). Raises ``StartInProgressError`` (retryable) while another start of the same
        saga id holds its claim, and the Google API errors of Workflows and Cloud Storage."""
        return self.claims.start(request.saga_id, _Target(self, request))

    def create(self, request: SagaRequest) -> StartOutcome:
        """The same as ``start``: no start looks for an execution first any more, each claims."""
        return self.start(request)

    def _create_execution(self, request: SagaRequest) -> str:
        from google.cloud.workflows import executions_v1

        execution = self._client().create_execution(
            parent=self.workflow_path,
            execution=executions_v1.Execution(
                argument=request.argument_json(), labels={LABEL: request.saga_id}
            ),
        )
        return str(execution.name)

    def _cancel_own(self, execution_name: str) -> None:
        from google.api_core import exceptions

        with contextlib.suppress(exceptions.FailedPrecondition):  # already ended: nothing left to stop
            self._client().cancel_execution(name=execution_name)

    def status(self, execution_name: str) -> SagaStatus:
        return _status_of(self._client().get_execution(name=execution_name))

    def cancel(self, execution_name: str) -> str:
        """Cancel the execution; returns its state after the call."""
        return execution_state(self._client().cancel_execution(name=execution_name))

    def argument(self, execution_name: str) -> Any:
        """The execution's argument (the normalized saga request), parsed; None when it is not JSON."""
        text = self._client().get_execution(name=execution_name).argument
        value = _json_or_text(text) if text else None
        return value if isinstance(value, dict) else None

    def resolve(self, saga: str) -> SagaStatus:
        """The status of the execution ``saga`` names: an execution name of this workflow, or a saga id
        (its first started execution, the one that runs the saga). Raises ``SagaNotFoundError``."""
        from google.api_core import exceptions

        if "/executions/" in saga:
            if not saga.startswith(self.workflow_path + "/executions/"):
                raise SagaNotFoundError(saga)
            try:
                return self.status(saga)
            except (exceptions.NotFound, exceptions.InvalidArgument):
                raise SagaNotFoundError(saga) from None
        name = self.first(saga)
        if name is None:
            raise SagaNotFoundError(saga)
        return self.status(name)

    def ended(self, since: datetime.datetime) -> list[SagaStatus]:
        """The executions that ended CANCELLED or FAILED at or after ``since`` (UTC), with their error,
        through the Executions API's ``filter`` on ``state`` and ``endTime``
        (https://cloud.google.com/workflows/docs/reference/executions/rest/v1/projects.locations.workflows.executions/list)."""
        from google.cloud.workflows import executions_v1

        stamp = since.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        pager = self._client().list_executions(
            request=executions_v1.ListExecutionsRequest(
                parent=self.workflow_path,
                filter=f'(state="CANCELLED" OR state="FAILED") AND endTime>="{stamp}"',
                page_size=100,
                view=executions_v1.ExecutionView.FULL,
            )
        )
        # FULL: each listed execution carries its error and times, so no Get per execution.
        return [_status_of(e) for e in pager]

    def listed(self, *, filter: str = "", page_size: int = 100) -> Iterator[SagaStatus]:
        """The executions of the saga workflow, newest first, that match the Executions API ``filter``
        (state, startTime, endTime, labels.*), each in the FULL view (its result, error and current
        steps come with the page: no Get per execution); pages are fetched as the caller reads on."""
        from google.cloud.workflows import executions_v1

        pager = self._client().list_executions(
            request=executions_v1.ListExecutionsRequest(
                parent=self.workflow_path,
                filter=filter,
                page_size=min(max(page_size, 1), 100),
                view=executions_v1.ExecutionView.FULL,
            )
        )
        return (_status_of(execution) for execution in pager)

    def _labelled(self, saga_id: str, *, page_size: int) -> Iterator[Execution]:
        """The executions labelled ``saga_id=<saga_id>``, newest first (the Executions API's order)."""
        from google.cloud.workflows import executions_v1

        pager = self._client().list_executions(
            request=executions_v1.ListExecutionsRequest(
                parent=self.workflow_path, filter=f'labels.{LABEL}="{saga_id}"', page_size=page_size
            )
        )
        return (e for e in pager if e.labels.get(LABEL, saga_id) == saga_id)


class _Target:
    """One start's view of the executions (``starts.StartTarget``)."""

    def __init__(self, executions: WorkflowExecutions, request: SagaRequest) -> None:
        self._executions = executions
        self._request = request

    def create(self) -> str:
        return self._executions._create_execution(self._request)

    def existing(self) -> str | None:
        return self._executions.first(self._request.saga_id)

    def cancel(self, execution_name: str) -> None:
        self._executions._cancel_own(execution_name)


def execution_state(execution: Execution) -> str:
    """The state's name (``ACTIVE``, ``SUCCEEDED``, ...)."""
    return str(type(execution).State(execution.state).name)


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _time(value: Any) -> str | None:
    if not value:
        return None
    try:
        return str(value.isoformat().replace("+00:00", "Z"))
    except AttributeError:
        return str(value)


def _status_of(execution: Execution) -> SagaStatus:
    """The saga's view of an execution as the Executions API returned it (FULL view)."""
    error = None
    steps = _current_steps(execution)
    if execution.error and execution.error.payload:
        error = _json_or_text(execution.error.payload)
    return SagaStatus(
        execution_name=str(execution.name),
        state=execution_state(execution),
        result=_json_or_text(execution.result) if execution.result else None,
        error=error,
        start_time=_time(execution.start_time),
        end_time=_time(execution.end_time),
        saga_id=execution.labels.get(LABEL),
        current_step=steps[-1] if steps else None,
        current_steps=steps,
        argument_json=str(execution.argument or ""),
    )


def _current_steps(execution: Execution) -> tuple[tuple[str, str], ...]:
    steps = list(execution.status.current_steps) if execution.status else []
    return tuple((str(step.routine), str(step.step)) for step in steps)
