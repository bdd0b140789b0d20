"""Executions: each runs as one asyncio task (``run_execution`` with a ``ServiceHost``) and ends
SUCCEEDED with a JSON ``result``, FAILED with an ``error``, or CANCELLED.

- An engine error (``WorkflowError``) fails the execution with the error map; any other exception is an
  engine defect and fails it with a ``SystemError`` rather than leaving it ACTIVE forever; a result that
  is not JSON fails it with a ``TypeError``.
- Cancelling (https://cloud.google.com/workflows/docs/reference/executions/rest/v1/projects.locations.workflows.executions/cancel)
  an execution that is not ACTIVE is FAILED_PRECONDITION; its callbacks answer 404 from then on.
- The outcome of each finished execution is logged as one Cloud Logging JSON line with its billable steps
  under both readings (``engine/metering.py``): one per step, and one per variable assignment.
- Finished executions stay listed up to ``retained_finished`` (the real service keeps them 90 days);
  the oldest are forgotten first.
- Each execution records its step entries (``engine/history.py``; at most 100,000 each). The finished
  executions' entries together stay under ``retained_entries``: past it, the oldest finished executions'
  entries are forgotten first, as ``executions.deleteExecutionHistory`` would
  (https://cloud.google.com/workflows/docs/reference/executions/rest/v1/projects.locations.workflows.executions/deleteExecutionHistory),
  and their step-entries list is empty. At about 125 bytes an entry, the default 500,000 is about 60 MB.

Use from the event loop's thread (the gRPC handlers run there too).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud.workflows.executions_v1.types import executions as ex
from google.cloud.workflows_v1.types import workflows as wf

from localcloud._project import project_number
from localcloud.workflows.engine.history import StepHistory
from localcloud.workflows.engine.host import ExecutionInfo
from localcloud.workflows.lang.errors import WorkflowError
from localcloud.workflows.service import protos
from localcloud.workflows.service.records import ExecutionRecord, State, WorkflowRecord
from localcloud.workflows.service.service_host import HostServices, ServiceHost

log = logging.getLogger("localcloud.workflows")
execution_log = logging.getLogger("localcloud.workflows.executions")

Runner = Callable[..., Any]
DEFAULT_RETAINED_ENTRIES = 500_000
UNDECODED: Any = object()


def _default_runner() -> tuple[Runner, Callable[[], Any]]:
    from localcloud.workflows.engine.interpreter import run_execution
    from localcloud.workflows.engine.metering import StepMeter

    return run_execution, StepMeter


class Executions:
    def __init__(
        self,
        services: HostServices,
        workflows: Mapping[str, WorkflowRecord],
        *,
        project_number: str,
        step_limit: int,
        retained_finished: int,
        retained_entries: int = DEFAULT_RETAINED_ENTRIES,
    ) -> None:
        self.services = services
        self.clock = services.clock
        self.workflows = workflows  # shared with the state, which owns it
        self.project_number = project_number
        self.step_limit = step_limit
        self.retained_finished = retained_finished
        self.retained_entries = retained_entries
        self._with_entries: deque[ExecutionRecord] = deque()  # finished, oldest first, entries kept
        self._entries_kept = 0
        self.records: dict[str, ExecutionRecord] = {}  # full name -> record
        self._by_id: dict[str, ExecutionRecord] = {}
        self._finished: deque[str] = deque()
        self._seq = 0

    def default_service_account(self, project_id: str) -> str:
        """The Compute Engine default service account of the workflow's project."""
        return f"{self.number_of(project_id)}-compute@developer.gserviceaccount.com"

    def number_of(self, project_id: str) -> str:
        """The number given to the state, else the local cloud's number for the id."""
        return project_number(project_id, self.project_number)

    def start(
        self,
        workflow: WorkflowRecord,
        argument: str,
        labels: dict[str, str],
        call_log_level: int,
        decoded: Any = UNDECODED,
    ) -> ExecutionRecord:
        """``decoded`` is ``argument`` already parsed, if the caller has it."""
        run_execution, step_meter = _default_runner()
        revision = workflow.latest
        execution_id = str(uuid.uuid4())
        name = f"{workflow.name}/executions/{execution_id}"
        self._seq += 1
        record = ExecutionRecord(
            name=name,
            execution_id=execution_id,
            workflow=workflow.name,
            revision_id=revision.revision_id,
            argument=argument,
            labels=labels,
            call_log_level=call_log_level,
            started_at=self.clock.now(),
            seq=self._seq,
        )
        record.meter = step_meter()
        record.history = StepHistory(
            self.clock,
            detailed=workflow.execution_history_level == wf.ExecutionHistoryLevel.EXECUTION_HISTORY_DETAILED,
        )
        host = ServiceHost(self._info(workflow, execution_id), name, self.services)
        self.services.callbacks.open_execution(name)
        workflow.add_execution(record)
        self.records[name] = record
        self._by_id[execution_id] = record
        if decoded is UNDECODED:
            decoded = json.loads(argument) if argument else None
        record.task = asyncio.get_running_loop().create_task(
            self._run(record, run_execution, revision.program, decoded, host),
            name=f"execution {execution_id}",
        )
        return record

    def _info(self, workflow: WorkflowRecord, execution_id: str) -> ExecutionInfo:
        revision = workflow.latest
        return ExecutionInfo(
            project_id=workflow.project_id,
            project_number=self.number_of(workflow.project_id),
            location=workflow.location,
            workflow_id=workflow.workflow_id,
            revision_id=revision.revision_id,
            execution_id=execution_id,
            service_account=revision.service_account or self.default_service_account(workflow.project_id),
            user_env=revision.user_env_vars,
        )

    def get(self, name: str) -> ExecutionRecord:
        record = self.records.get(name)
        if record is None:
            raise gexc.NotFound(f"Resource '{name}' was not found")
        return record

    def find(self, name_or_id: str) -> ExecutionRecord | None:
        return self._by_id.get(name_or_id) or self.records.get(name_or_id)

    def cancel(self, record: ExecutionRecord) -> None:
        if not record.active:
            raise gexc.FailedPrecondition(
                f"execution {record.name} is not active; it is {State(record.state).name}"
            )
        task = record.task
        self._finish(record, State.CANCELLED, error=protos.cancelled_error())
        if task is not None:
            task.cancel()

    def drop(self, workflow: WorkflowRecord) -> None:
        """Cancel and forget every execution of ``workflow``, which is being deleted."""
        for execution in list(workflow.executions.values()):
            if execution.active:
                self.cancel(execution)
            self._drop_entries(execution)
            self.records.pop(execution.name, None)
            self._by_id.pop(execution.execution_id, None)

    async def stop(self) -> None:
        tasks = [r.task for r in self.records.values() if r.active and r.task is not None]
        for record in list(self.records.values()):
            if record.active:
                self.cancel(record)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(
        self, record: ExecutionRecord, run_execution: Runner, program: Any, argument: Any, host: ServiceHost
    ) -> None:
        try:
            result = await run_execution(
                program,
                argument,
                host,
                meter=record.meter,
                step_limit=self.step_limit,
                history=record.history,
            )
        except asyncio.CancelledError:
            self._finish(record, State.CANCELLED, error=protos.cancelled_error())
            return
        except WorkflowError as error:
            self._finish(record, State.FAILED, error=protos.execution_error(error))
            return
        except Exception as error:  # an engine defect must not look like a hung execution
            log.exception("execution %s crashed", record.name)
            failure = WorkflowError.tagged("SystemError", f"internal error: {type(error).__name__}: {error}")
            self._finish(record, State.FAILED, error=protos.execution_error(failure))
            return
        try:
            encoded = protos.json_result(result)
        except (TypeError, ValueError) as error:
            failure = WorkflowError.tagged("TypeError", f"result is not JSON serialisable: {error}")
            self._finish(record, State.FAILED, error=protos.execution_error(failure))
            return
        self._finish(record, State.SUCCEEDED, result=encoded)

    def _finish(
        self,
        record: ExecutionRecord,
        state: int,
        *,
        result: str | None = None,
        error: ex.Execution.Error | None = None,
    ) -> None:
        if not record.active:
            return
        record.task = None  # a finished execution keeps its outcome, not its coroutine
        record.state = state
        record.ended_at = self.clock.now()
        record.result = result
        record.error = error
        self.services.callbacks.close_execution(record.name)
        self._keep_entries(record, state)
        if execution_log.isEnabledFor(logging.INFO):
            _log_outcome(record, state)
        self._finished.append(record.name)
        while len(self._finished) > self.retained_finished:
            self._forget(self._finished.popleft())

    def _keep_entries(self, record: ExecutionRecord, state: int) -> None:
        history = record.history
        if history is None:
            return
        if state == State.CANCELLED:
            history.cancel_open()  # the task ends them too, once it sees the cancellation
        self._with_entries.append(record)
        self._entries_kept += len(history)
        while self._with_entries and (
            self._entries_kept > self.retained_entries or len(self._with_entries) > self.retained_finished
        ):
            self._drop_entries(self._with_entries.popleft())

    def _drop_entries(self, record: ExecutionRecord) -> None:
        if record.history is not None and len(record.history):
            self._entries_kept -= len(record.history)
            record.history.clear()

    def _forget(self, name: str) -> None:
        record = self.records.pop(name, None)
        if record is None:
            return
        self._by_id.pop(record.execution_id, None)
        workflow = self.workflows.get(record.workflow)
        if workflow is not None:
            workflow.remove_execution(record)


def _log_outcome(record: ExecutionRecord, state: int) -> None:
    assert record.ended_at is not None
    steps = record.billable_steps()
    assigned = record.billable_steps_per_assignment()
    execution_log.info(
        json.dumps(
            {
                "severity": "INFO" if state == State.SUCCEEDED else "NOTICE",
                "message": f"execution {record.execution_id} {State(state).name}: "
                f"{steps['total']} billable steps ({steps['internal']} internal, {steps['external']} external); "
                f"{assigned['total']} counting each assignment ({assigned['internal']} internal, "
                f"{assigned['external']} external)",
                "execution": record.name,
                "state": State(state).name,
                "billable_steps": steps,
                "billable_steps_per_assignment": assigned,
                "duration_seconds": round(record.ended_at - record.started_at, 6),
                "logging.googleapis.com/labels": {
                    "workflows.googleapis.com/execution_id": record.execution_id,
                    **{f"label.{k}": v for k, v in record.labels.items()},
                },
            }
        )
    )
