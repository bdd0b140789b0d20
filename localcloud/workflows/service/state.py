"""State and RPC handlers of the Workflows API (``google.cloud.workflows.v1.Workflows`` plus the
``google.longrunning.Operations`` its clients poll) and the Executions API
(``google.cloud.workflows.executions.v1.Executions``).

``WorkflowsState`` is the state: deployed workflows with their revisions, and executions. Each execution
runs as one asyncio task (``run_execution`` with a ``ServiceHost``); ``CancelExecution`` cancels the task.
The handler classes are named after the real RPCs and raise what the real service raises
(``NotFound``, ``AlreadyExists``, ``InvalidArgument``, ``FailedPrecondition``).

Behaviour follows the API reference (google-cloud-workflows 1.24.0 types): a new revision id
("000001-a4d") whenever the source, the service account or the user env vars change; create/update/delete
answer a finished long-running operation; ``argument`` and ``result`` are JSON strings, ``argument`` at most
32 KB; ``result`` only when SUCCEEDED and ``error`` only when FAILED or CANCELLED; ListExecutions newest
first, BASIC view by default, page size default 100 (max 1000 BASIC, 100 FULL); GetExecution FULL by
default; deleting a workflow cancels and deletes its executions.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import secrets
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud.workflows.executions_v1.types import executions as ex
from google.cloud.workflows_v1.types import workflows as wf
from google.longrunning import operations_pb2
from google.protobuf import any_pb2, duration_pb2, empty_pb2, timestamp_pb2

from localcloud.workflows.engine.host import SUPPORTED_CONNECTORS, ExecutionInfo
from localcloud.workflows.lang.errors import DeployError, WorkflowError
from localcloud.workflows.service.callbacks import CallbackRegistry
from localcloud.workflows.service.service_host import HostServices, ServiceHost

log = logging.getLogger("localcloud.workflows")
execution_log = logging.getLogger("localcloud.workflows.executions")

MAX_SOURCE_BYTES = 128 * 1024
MAX_ARGUMENT_BYTES = 32 * 1024
MAX_DESCRIPTION_CHARS = 1000
MAX_LABELS = 64
MAX_ENV_VARS = 20
MAX_ENV_VALUE_BYTES = 4 * 1024
DEFAULT_STEP_LIMIT = 100_000
DEFAULT_PROJECT_NUMBER = "123456789012"
# Finished executions kept for Get/List (the real service keeps them 90 days); the oldest go first.
DEFAULT_RETAINED_FINISHED = 50_000
MAX_OPERATIONS_KEPT = 1_000

State = ex.Execution.State
_WORKFLOW_ID = re.compile(r"^[A-Za-z](?:[A-Za-z0-9_-]{0,62}[A-Za-z0-9])?$")
_LABEL_KEY = re.compile(r"^[\w-]{0,63}$")
_PARENT = re.compile(r"^projects/([^/]+)/locations/([^/]+)$")


# ---------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Revision:
    revision_id: str
    source: str
    service_account: str
    user_env_vars: Mapping[str, str]
    created_at: float
    program: Any


@dataclass
class WorkflowRecord:
    name: str
    workflow_id: str
    project_id: str
    location: str
    description: str
    labels: dict[str, str]
    call_log_level: int
    created_at: float
    updated_at: float
    revisions: list[Revision] = field(default_factory=list)  # oldest first
    executions: dict[str, ExecutionRecord] = field(default_factory=dict)  # id -> record, oldest first
    # (label key, value) -> {id: record}, oldest first: ListExecutions with labels.KEY="VALUE" reads this
    by_label: dict[tuple[str, str], dict[str, ExecutionRecord]] = field(default_factory=dict)

    def add_execution(self, record: ExecutionRecord) -> None:
        self.executions[record.execution_id] = record
        for pair in record.labels.items():
            self.by_label.setdefault(pair, {})[record.execution_id] = record

    def remove_execution(self, record: ExecutionRecord) -> None:
        self.executions.pop(record.execution_id, None)
        for pair in record.labels.items():
            same = self.by_label.get(pair)
            if same is not None:
                same.pop(record.execution_id, None)
                if not same:
                    del self.by_label[pair]

    @property
    def latest(self) -> Revision:
        return self.revisions[-1]


class ExecutionRecord:
    __slots__ = (
        "argument",
        "call_log_level",
        "ended_at",
        "error",
        "execution_id",
        "labels",
        "meter",
        "name",
        "result",
        "revision_id",
        "seq",
        "started_at",
        "state",
        "task",
        "workflow",
    )

    def __init__(
        self,
        *,
        name: str,
        execution_id: str,
        workflow: str,
        revision_id: str,
        argument: str,
        labels: dict[str, str],
        call_log_level: int,
        started_at: float,
        seq: int,
    ) -> None:
        self.name = name
        self.execution_id = execution_id
        self.workflow = workflow
        self.revision_id = revision_id
        self.argument = argument
        self.labels = labels
        self.call_log_level = call_log_level
        self.started_at = started_at
        self.seq = seq
        self.state: int = State.ACTIVE
        self.ended_at: float | None = None
        self.result: str | None = None
        self.error: ex.Execution.Error | None = None
        self.meter: Any = None
        self.task: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        return self.state == State.ACTIVE

    def billable_steps(self) -> dict[str, int]:
        internal = int(getattr(self.meter, "internal", 0) or 0)
        external = int(getattr(self.meter, "external", 0) or 0)
        return {"internal": internal, "external": external, "total": internal + external}

    def current_step(self) -> tuple[str, str] | None:
        current = getattr(self.meter, "current", None)
        if isinstance(current, tuple) and len(current) == 2:
            return (str(current[0]), str(current[1]))
        return None

    def to_proto(self, view: int = ex.ExecutionView.FULL) -> Any:
        """The ``Execution`` as a raw protobuf message (what the gRPC shell sends as is)."""
        message = _EXECUTION_PB(
            name=self.name,
            start_time=_timestamp(self.started_at),
            state=self.state,
            workflow_revision_id=self.revision_id,
        )
        if self.ended_at is not None:
            message.end_time.CopyFrom(_timestamp(self.ended_at))
            message.duration.CopyFrom(_duration(self.ended_at - self.started_at))
        if view == ex.ExecutionView.BASIC:
            return message
        message.argument = self.argument
        message.labels.update(self.labels)
        message.call_log_level = self.call_log_level
        if self.result is not None:
            message.result = self.result
        if self.error is not None:
            message.error.CopyFrom(ex.Execution.Error.pb(self.error))
        current = self.current_step()
        if current is not None:
            message.status.current_steps.add(routine=current[0], step=current[1])
        return message


_EXECUTION_PB: Any = ex.Execution.pb()


# ------------------------------------------------------------------------------------------------ state

Loader = Callable[[str], Any]
Runner = Callable[..., Any]
_UNDECODED: Any = object()


def _default_loader(source: str) -> Any:
    from localcloud.workflows.engine.loader import load_workflow

    return load_workflow(source, filename="workflow.yaml", connectors=SUPPORTED_CONNECTORS)


def _default_runner() -> tuple[Runner, Callable[[], Any]]:
    from localcloud.workflows.engine.interpreter import run_execution
    from localcloud.workflows.engine.metering import StepMeter

    return run_execution, StepMeter


class WorkflowsState:
    """Use from the event loop's thread (the gRPC handlers run there too)."""

    def __init__(
        self,
        services: HostServices,
        *,
        project_number: str = DEFAULT_PROJECT_NUMBER,
        step_limit: int = DEFAULT_STEP_LIMIT,
        retained_finished: int = DEFAULT_RETAINED_FINISHED,
        loader: Loader | None = None,
    ) -> None:
        self.services = services
        self.clock = services.clock
        self.callbacks: CallbackRegistry = services.callbacks
        self.project_number = project_number
        self.step_limit = step_limit
        self.retained_finished = retained_finished
        self._load = loader or _default_loader
        self.workflows: dict[str, WorkflowRecord] = {}
        self.executions: dict[str, ExecutionRecord] = {}  # full name -> record
        self._by_id: dict[str, ExecutionRecord] = {}
        self._finished: deque[str] = deque()
        self._seq = 0
        self.operations: OrderedDict[str, operations_pb2.Operation] = OrderedDict()

    # -- workflows

    def compile(self, source: str) -> Any:
        if not source.strip():
            raise gexc.InvalidArgument("workflow source_contents must not be empty")
        if len(source.encode()) > MAX_SOURCE_BYTES:
            raise gexc.InvalidArgument(f"workflow source exceeds the {MAX_SOURCE_BYTES // 1024} KB limit")
        try:
            return self._load(source)
        except DeployError as error:
            raise gexc.InvalidArgument(f"failed to build: {error}") from None

    def workflow(self, name: str) -> WorkflowRecord:
        record = self.workflows.get(name)
        if record is None:
            raise gexc.NotFound(f"Resource '{name}' was not found")
        return record

    def new_revision(
        self, record: WorkflowRecord | None, source: str, service_account: str, env: Mapping[str, str]
    ) -> Revision:
        program = self.compile(source)
        ordinal = len(record.revisions) + 1 if record is not None else 1
        return Revision(
            revision_id=f"{ordinal:06d}-{secrets.token_hex(2)[:3]}",
            source=source,
            service_account=service_account,
            user_env_vars=dict(env),
            created_at=self.clock.now(),
            program=program,
        )

    def delete_workflow(self, name: str) -> None:
        record = self.workflow(name)
        for execution in list(record.executions.values()):
            if execution.active:
                self.cancel(execution)
            self.executions.pop(execution.name, None)
            self._by_id.pop(execution.execution_id, None)
        del self.workflows[name]

    def operation(
        self, parent_project: str, location: str, verb: str, target: str, response: Any
    ) -> operations_pb2.Operation:
        now = self.clock.now()
        name = f"projects/{parent_project}/locations/{location}/operations/operation-{int(now * 1000)}-{uuid.uuid4().hex[:16]}"
        metadata = wf.OperationMetadata(
            create_time=_timestamp(now), end_time=_timestamp(now), target=target, verb=verb, api_version="v1"
        )
        packed_metadata = any_pb2.Any()
        packed_metadata.Pack(wf.OperationMetadata.pb(metadata))
        packed_response = any_pb2.Any()
        packed_response.Pack(response)
        operation = operations_pb2.Operation(
            name=name, done=True, metadata=packed_metadata, response=packed_response
        )
        self.operations[name] = operation
        while len(self.operations) > MAX_OPERATIONS_KEPT:
            self.operations.popitem(last=False)
        return operation

    # -- executions

    def start_execution(
        self,
        workflow: WorkflowRecord,
        argument: str,
        labels: dict[str, str],
        call_log_level: int,
        decoded: Any = _UNDECODED,
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
        info = ExecutionInfo(
            project_id=workflow.project_id,
            project_number=self.project_number,
            location=workflow.location,
            workflow_id=workflow.workflow_id,
            revision_id=revision.revision_id,
            execution_id=execution_id,
            service_account=revision.service_account or self.default_service_account,
            user_env=revision.user_env_vars,
        )
        host = ServiceHost(info, name, self.services)
        self.callbacks.open_execution(name)
        workflow.add_execution(record)
        self.executions[name] = record
        self._by_id[execution_id] = record
        if decoded is _UNDECODED:
            decoded = json.loads(argument) if argument else None
        record.task = asyncio.get_running_loop().create_task(
            self._run(record, run_execution, revision.program, decoded, host),
            name=f"execution {execution_id}",
        )
        return record

    @property
    def default_service_account(self) -> str:
        return f"{self.project_number}-compute@developer.gserviceaccount.com"

    async def _run(
        self, record: ExecutionRecord, run_execution: Runner, program: Any, argument: Any, host: ServiceHost
    ) -> None:
        try:
            result = await run_execution(
                program, argument, host, meter=record.meter, step_limit=self.step_limit
            )
        except asyncio.CancelledError:
            self._finish(record, State.CANCELLED, error=_cancelled_error())
            return
        except WorkflowError as error:
            self._finish(record, State.FAILED, error=_execution_error(error))
            return
        except Exception as error:  # an engine defect must not look like a hung execution
            log.exception("execution %s crashed", record.name)
            failure = WorkflowError.tagged("SystemError", f"internal error: {type(error).__name__}: {error}")
            self._finish(record, State.FAILED, error=_execution_error(failure))
            return
        try:
            encoded = json.dumps(result, separators=(",", ":"), ensure_ascii=False, default=_json_default)
        except (TypeError, ValueError) as error:
            failure = WorkflowError.tagged("TypeError", f"result is not JSON serialisable: {error}")
            self._finish(record, State.FAILED, error=_execution_error(failure))
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
        self.callbacks.close_execution(record.name)
        if execution_log.isEnabledFor(logging.INFO):
            self._log_outcome(record, state)
        self._finished.append(record.name)
        while len(self._finished) > self.retained_finished:
            self._forget(self._finished.popleft())

    def _log_outcome(self, record: ExecutionRecord, state: int) -> None:
        assert record.ended_at is not None
        steps = record.billable_steps()
        execution_log.info(
            json.dumps(
                {
                    "severity": "INFO" if state == State.SUCCEEDED else "NOTICE",
                    "message": f"execution {record.execution_id} {State(state).name}: "
                    f"{steps['total']} billable steps ({steps['internal']} internal, {steps['external']} external)",
                    "execution": record.name,
                    "state": State(state).name,
                    "billable_steps": steps,
                    "duration_seconds": round(record.ended_at - record.started_at, 6),
                    "logging.googleapis.com/labels": {
                        "workflows.googleapis.com/execution_id": record.execution_id,
                        **{f"label.{k}": v for k, v in record.labels.items()},
                    },
                }
            )
        )

    def _forget(self, name: str) -> None:
        record = self.executions.pop(name, None)
        if record is None:
            return
        self._by_id.pop(record.execution_id, None)
        workflow = self.workflows.get(record.workflow)
        if workflow is not None:
            workflow.remove_execution(record)

    def execution(self, name: str) -> ExecutionRecord:
        record = self.executions.get(name)
        if record is None:
            raise gexc.NotFound(f"Resource '{name}' was not found")
        return record

    def cancel(self, record: ExecutionRecord) -> None:
        if not record.active:
            raise gexc.FailedPrecondition(
                f"execution {record.name} is not active; it is {State(record.state).name}"
            )
        task = record.task
        self._finish(record, State.CANCELLED, error=_cancelled_error())
        if task is not None:
            task.cancel()

    async def stop(self) -> None:
        tasks = [r.task for r in self.executions.values() if r.active and r.task is not None]
        for record in list(self.executions.values()):
            if record.active:
                self.cancel(record)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- admin pages (AdminSource)

    def admin_view(self, record: ExecutionRecord) -> dict[str, Any]:
        current = record.current_step()
        return {
            "name": record.name,
            "executionId": record.execution_id,
            "workflow": record.workflow,
            "workflowRevisionId": record.revision_id,
            "state": State(record.state).name,
            "startTime": _rfc3339(record.started_at),
            "endTime": _rfc3339(record.ended_at) if record.ended_at is not None else None,
            "billableSteps": record.billable_steps(),
            "currentStep": {"routine": current[0], "step": current[1]} if current else None,
            "labels": dict(record.labels),
        }

    def admin_execution(self, execution_id: str) -> dict[str, Any] | None:
        record = self._by_id.get(execution_id) or self.executions.get(execution_id)
        return None if record is None else self.admin_view(record)

    def admin_executions(self, state: str | None = None) -> list[dict[str, Any]]:
        records = sorted(self.executions.values(), key=lambda r: -r.seq)
        if state:
            records = [r for r in records if State(r.state).name == state.upper()]
        return [self.admin_view(r) for r in records]


# ------------------------------------------------------------------------------------- Workflows API

_REVISION_FIELDS = ("source_contents", "service_account", "user_env_vars")
_UPDATABLE = {
    "description",
    "labels",
    "service_account",
    "source_contents",
    "call_log_level",
    "user_env_vars",
}


class WorkflowsApi:
    def __init__(self, state: WorkflowsState) -> None:
        self.state = state

    async def CreateWorkflow(
        self, request: wf.CreateWorkflowRequest, context: Any
    ) -> operations_pb2.Operation:
        match = _PARENT.match(request.parent)
        if match is None:
            raise gexc.InvalidArgument(
                f"parent must look like projects/P/locations/L, got {request.parent!r}"
            )
        if not _WORKFLOW_ID.match(request.workflow_id):
            raise gexc.InvalidArgument(
                "workflow_id must contain only letters, numbers, underscores and hyphens, start with a letter, "
                "end with a letter or number and be 1-64 characters long"
            )
        name = f"{request.parent}/workflows/{request.workflow_id}"
        if name in self.state.workflows:
            raise gexc.AlreadyExists(f"Resource '{name}' already exists")
        workflow = request.workflow
        _validate_workflow_fields(workflow)
        revision = self.state.new_revision(
            None,
            workflow.source_contents,
            _service_account_email(workflow.service_account),
            workflow.user_env_vars,
        )
        now = self.state.clock.now()
        record = WorkflowRecord(
            name=name,
            workflow_id=request.workflow_id,
            project_id=match.group(1),
            location=match.group(2),
            description=workflow.description,
            labels=dict(workflow.labels),
            call_log_level=int(workflow.call_log_level),
            created_at=now,
            updated_at=now,
            revisions=[revision],
        )
        self.state.workflows[name] = record
        return self._operation(record, "create", _workflow_proto(record, record.latest))

    async def GetWorkflow(self, request: wf.GetWorkflowRequest, context: Any) -> wf.Workflow:
        record = self.state.workflow(request.name)
        if not request.revision_id:
            return _workflow_proto(record, record.latest)
        for revision in record.revisions:
            if revision.revision_id == request.revision_id:
                return _workflow_proto(record, revision)
        raise gexc.NotFound(f"revision {request.revision_id} of {request.name} was not found")

    async def ListWorkflows(self, request: wf.ListWorkflowsRequest, context: Any) -> wf.ListWorkflowsResponse:
        if _PARENT.match(request.parent) is None:
            raise gexc.InvalidArgument(
                f"parent must look like projects/P/locations/L, got {request.parent!r}"
            )
        prefix = request.parent + "/workflows/"
        names = sorted(n for n in self.state.workflows if n.startswith(prefix))
        size = _page_size(request.page_size, default=500, maximum=1000)
        if request.page_token:
            after = _decode_token(request.page_token)
            names = [n for n in names if n > after]
        page = names[:size]
        response = wf.ListWorkflowsResponse(
            workflows=[_workflow_proto(self.state.workflows[n], self.state.workflows[n].latest) for n in page]
        )
        if len(names) > size:
            response.next_page_token = _encode_token(page[-1])
        return response

    async def UpdateWorkflow(
        self, request: wf.UpdateWorkflowRequest, context: Any
    ) -> operations_pb2.Operation:
        incoming = request.workflow
        record = self.state.workflow(incoming.name)
        paths = (
            set(request.update_mask.paths)
            if request.update_mask and request.update_mask.paths
            else set(_UPDATABLE)
        )
        unknown = paths - _UPDATABLE
        if unknown:
            raise gexc.InvalidArgument(
                f"update_mask names fields that cannot be updated: {', '.join(sorted(unknown))}"
            )
        _validate_workflow_fields(incoming, check_source="source_contents" in paths)
        latest = record.latest
        source = incoming.source_contents if "source_contents" in paths else latest.source
        account = (
            _service_account_email(incoming.service_account)
            if "service_account" in paths
            else latest.service_account
        )
        env = dict(incoming.user_env_vars) if "user_env_vars" in paths else dict(latest.user_env_vars)
        if (source, account, env) != (latest.source, latest.service_account, dict(latest.user_env_vars)):
            record.revisions.append(self.state.new_revision(record, source, account, env))
        if "description" in paths:
            record.description = incoming.description
        if "labels" in paths:
            record.labels = dict(incoming.labels)
        if "call_log_level" in paths:
            record.call_log_level = int(incoming.call_log_level)
        record.updated_at = self.state.clock.now()
        return self._operation(record, "update", _workflow_proto(record, record.latest))

    async def DeleteWorkflow(
        self, request: wf.DeleteWorkflowRequest, context: Any
    ) -> operations_pb2.Operation:
        record = self.state.workflow(request.name)
        self.state.delete_workflow(request.name)
        return self.state.operation(
            record.project_id, record.location, "delete", record.name, empty_pb2.Empty()
        )

    async def ListWorkflowRevisions(
        self, request: wf.ListWorkflowRevisionsRequest, context: Any
    ) -> wf.ListWorkflowRevisionsResponse:
        record = self.state.workflow(request.name)
        revisions = list(reversed(record.revisions))
        size = _page_size(request.page_size, default=20, maximum=100)
        start = int(_decode_token(request.page_token) or 0) if request.page_token else 0
        page = revisions[start : start + size]
        response = wf.ListWorkflowRevisionsResponse(workflows=[_workflow_proto(record, r) for r in page])
        if start + size < len(revisions):
            response.next_page_token = _encode_token(str(start + size))
        return response

    def _operation(
        self, record: WorkflowRecord, verb: str, workflow: wf.Workflow
    ) -> operations_pb2.Operation:
        return self.state.operation(
            record.project_id, record.location, verb, record.name, wf.Workflow.pb(workflow)
        )


class OperationsApi:
    def __init__(self, state: WorkflowsState) -> None:
        self.state = state

    async def GetOperation(
        self, request: operations_pb2.GetOperationRequest, context: Any
    ) -> operations_pb2.Operation:
        operation = self.state.operations.get(request.name)
        if operation is None:
            raise gexc.NotFound(f"Operation '{request.name}' was not found")
        return operation

    async def ListOperations(
        self, request: operations_pb2.ListOperationsRequest, context: Any
    ) -> operations_pb2.ListOperationsResponse:
        prefix = request.name.rstrip("/") + "/operations/"
        return operations_pb2.ListOperationsResponse(
            operations=[op for name, op in self.state.operations.items() if name.startswith(prefix)]
        )

    async def DeleteOperation(
        self, request: operations_pb2.DeleteOperationRequest, context: Any
    ) -> empty_pb2.Empty:
        if self.state.operations.pop(request.name, None) is None:
            raise gexc.NotFound(f"Operation '{request.name}' was not found")
        return empty_pb2.Empty()


def _validate_workflow_fields(workflow: wf.Workflow, *, check_source: bool = True) -> None:
    problems: list[str] = []
    if check_source and not workflow.source_contents:
        problems.append("source_contents is required")
    if len(workflow.description) > MAX_DESCRIPTION_CHARS:
        problems.append(f"description must be at most {MAX_DESCRIPTION_CHARS} characters")
    problems += _label_problems(workflow.labels)
    env = dict(workflow.user_env_vars)
    if len(env) > MAX_ENV_VARS:
        problems.append(f"user_env_vars may hold at most {MAX_ENV_VARS} variables, got {len(env)}")
    for key, value in env.items():
        if not key:
            problems.append("user_env_vars keys must not be empty")
        elif key.startswith(("GOOGLE", "WORKFLOWS")):
            problems.append(f"user_env_vars key {key!r} must not start with GOOGLE or WORKFLOWS")
        if len(key.encode()) > MAX_ENV_VALUE_BYTES or len(value.encode()) > MAX_ENV_VALUE_BYTES:
            problems.append(f"user_env_vars entry {key!r} exceeds 4 KiB")
    if problems:
        raise gexc.InvalidArgument("; ".join(problems))


def _service_account_email(value: str) -> str:
    # "projects/{project}/serviceAccounts/{account}" or just "{account}"
    return value.rsplit("/serviceAccounts/", 1)[-1] if value else ""


def _workflow_proto(record: WorkflowRecord, revision: Revision) -> wf.Workflow:
    return wf.Workflow(
        name=record.name,
        description=record.description,
        state=wf.Workflow.State.ACTIVE,
        revision_id=revision.revision_id,
        create_time=_timestamp(record.created_at),
        update_time=_timestamp(record.updated_at),
        revision_create_time=_timestamp(revision.created_at),
        labels=dict(record.labels),
        service_account=revision.service_account,
        source_contents=revision.source,
        call_log_level=record.call_log_level,
        user_env_vars=dict(revision.user_env_vars),
    )


# ------------------------------------------------------------------------------------ Executions API


class ExecutionsApi:
    def __init__(self, state: WorkflowsState) -> None:
        self.state = state

    # The hot RPCs take and answer raw protobuf messages (see ``server.handlers``): no proto-plus wrapping.

    async def CreateExecution(self, request: Any, context: Any) -> Any:
        workflow = self.state.workflow(request.parent)
        execution = request.execution
        argument = execution.argument
        problems: list[str] = []
        decoded = None
        if len(argument.encode()) > MAX_ARGUMENT_BYTES:
            problems.append(f"argument exceeds the {MAX_ARGUMENT_BYTES // 1024} KB limit")
        elif argument:
            try:
                decoded = json.loads(argument)
            except ValueError as error:
                problems.append(f"argument is not valid JSON: {error}")
        problems += _label_problems(execution.labels)
        if problems:
            raise gexc.InvalidArgument("; ".join(problems))
        labels = {**workflow.labels, **dict(execution.labels)}
        call_log_level = int(execution.call_log_level) or workflow.call_log_level
        record = self.state.start_execution(workflow, argument, labels, call_log_level, decoded)
        return record.to_proto()

    async def GetExecution(self, request: Any, context: Any) -> Any:
        record = self.state.execution(request.name)
        return record.to_proto(request.view or ex.ExecutionView.FULL)

    async def ListExecutions(self, request: Any, context: Any) -> Any:
        workflow = self.state.workflow(request.parent)
        view = request.view or ex.ExecutionView.BASIC
        size = _page_size(
            request.page_size, default=100, maximum=100 if view == ex.ExecutionView.FULL else 1000
        )
        predicate, required_labels = plan_filter(request.filter)
        candidates = workflow.executions
        for pair in required_labels:  # an index lookup instead of a scan of every execution
            indexed = workflow.by_label.get(pair, {})
            if len(indexed) < len(candidates):
                candidates = indexed
        records = [r for r in candidates.values() if predicate(r)]
        order = _order_key(request.order_by)
        if order is None:
            records.sort(key=lambda r: -r.seq)
            if request.page_token:
                before = int(_decode_token(request.page_token) or 0)
                records = [r for r in records if r.seq < before]
            page = records[:size]
            next_token = _encode_token(str(page[-1].seq)) if len(records) > size else ""
        else:
            key, reverse = order
            records.sort(key=key, reverse=reverse)
            start = int(_decode_token(request.page_token) or 0) if request.page_token else 0
            page = records[start : start + size]
            next_token = _encode_token(str(start + size)) if start + size < len(records) else ""
        return _LIST_EXECUTIONS_RESPONSE_PB(
            executions=[r.to_proto(view) for r in page], next_page_token=next_token
        )

    async def CancelExecution(self, request: Any, context: Any) -> Any:
        record = self.state.execution(request.name)
        self.state.cancel(record)
        return record.to_proto()


_LIST_EXECUTIONS_RESPONSE_PB: Any = ex.ListExecutionsResponse.pb()

# ---------------------------------------------------------------------------------- ListExecutions filter

Predicate = Callable[[ExecutionRecord], bool]
_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<op><=|>=|!=|=|<|>|:|\(|\))|(?P<word>[^\s=<>!:()"]+))'
)
_FILTER_FIELDS = {
    "state",
    "executionid",
    "workflowrevisionid",
    "starttime",
    "endtime",
    "duration",
    "labels",
    "label",
}


def parse_filter(text: str) -> Predicate:
    """An AIP-160 subset: comparisons (``= != < > <= >= :``) on state, executionID, workflowRevisionID,
    startTime, endTime, duration and ``labels.KEY``, combined with AND, OR (binds tighter), NOT and
    parentheses. Unknown fields are INVALID_ARGUMENT, as in the real API."""
    return plan_filter(text)[0]


def plan_filter(text: str) -> tuple[Predicate, list[tuple[str, str]]]:
    """``parse_filter``, plus the ``labels.KEY="VALUE"`` comparisons every match must satisfy (those ANDed
    at the top level), which let a listing start from the label index."""
    tokens = _tokenize(text)
    if not tokens:
        return (lambda _: True), []
    parser = _FilterParser(tokens)
    predicate = parser.expression(top=True)
    if parser.position != len(tokens):
        raise gexc.InvalidArgument(f"invalid filter {text!r}: unexpected {tokens[parser.position][1]!r}")
    return predicate, parser.required_labels


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise gexc.InvalidArgument(f"invalid filter {text!r} at character {position}")
        kind = match.lastgroup or "word"
        value = match.group(kind)
        if kind == "str":
            value = json.loads(value)
        tokens.append((kind, value))
        position = match.end()
        while position < len(text) and text[position].isspace():
            position += 1
    return tokens


class _FilterParser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.position = 0
        self._label_equalities: dict[int, tuple[str, str]] = {}  # id(predicate) -> (key, value)
        self.required_labels: list[tuple[str, str]] = []

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _next(self) -> tuple[str, str]:
        token = self._peek()
        if token is None:
            raise gexc.InvalidArgument("invalid filter: unexpected end")
        self.position += 1
        return token

    def expression(self, *, top: bool = False) -> Predicate:
        terms = [self.disjunction()]
        while True:
            token = self._peek()
            if token is None or token == ("op", ")"):
                break
            if token == ("word", "AND"):
                self.position += 1
            terms.append(self.disjunction())
        if top:
            self.required_labels = [
                self._label_equalities[id(t)] for t in terms if id(t) in self._label_equalities
            ]
        if len(terms) == 1:
            return terms[0]
        return lambda r: all(t(r) for t in terms)

    def disjunction(self) -> Predicate:
        options = [self.factor()]
        while self._peek() == ("word", "OR"):
            self.position += 1
            options.append(self.factor())
        return options[0] if len(options) == 1 else (lambda r: any(o(r) for o in options))

    def factor(self) -> Predicate:
        token = self._next()
        if token in (("word", "NOT"), ("op", "-")):
            inner = self.factor()
            return lambda r: not inner(r)
        if token == ("op", "("):
            inner = self.expression()
            if self._next() != ("op", ")"):
                raise gexc.InvalidArgument("invalid filter: missing ')'")
            return inner
        if token[0] != "word":
            raise gexc.InvalidArgument(f"invalid filter: unexpected {token[1]!r}")
        field_name = token[1]
        op = self._next()
        if op[0] != "op" or op[1] in ("(", ")"):
            raise gexc.InvalidArgument(f"invalid filter: expected an operator after {field_name!r}")
        value = self._next()
        if value[0] == "op":
            raise gexc.InvalidArgument(f"invalid filter: expected a value after {field_name} {op[1]}")
        predicate = _comparison(field_name, op[1], value[1])
        head, _, key = field_name.partition(".")
        if op[1] == "=" and key and head.lower() in ("labels", "label"):
            self._label_equalities[id(predicate)] = (key, value[1])
        return predicate


def _comparison(field_name: str, op: str, value: str) -> Predicate:
    head, _, key = field_name.partition(".")
    lowered = head.lower()
    if lowered not in _FILTER_FIELDS:
        raise gexc.InvalidArgument(f"invalid filter: field {field_name!r} is not supported")
    if lowered in ("labels", "label"):
        if not key:
            if op != ":":
                raise gexc.InvalidArgument('invalid filter: use labels.KEY="value" or labels:KEY')
            return lambda r: value in r.labels
        if op == ":":
            return lambda r: key in r.labels
        return _compare_with(lambda r: r.labels.get(key), op, value)
    if lowered == "state":
        wanted = value.upper()
        if wanted not in State.__members__:
            raise gexc.InvalidArgument(f"invalid filter: unknown state {value!r}")
        return _compare_with(lambda r: State(r.state).name, op, wanted)
    if lowered == "executionid":
        return _compare_with(lambda r: r.execution_id, op, value)
    if lowered == "workflowrevisionid":
        return _compare_with(lambda r: r.revision_id, op, value)
    if lowered == "duration":
        seconds = _parse_duration(value)
        return _compare_with(lambda r: None if r.ended_at is None else r.ended_at - r.started_at, op, seconds)
    moment = _parse_time(value)
    if lowered == "starttime":
        return _compare_with(lambda r: r.started_at, op, moment)
    return _compare_with(lambda r: r.ended_at, op, moment)


def _compare_with(get: Callable[[ExecutionRecord], Any], op: str, wanted: Any) -> Predicate:
    def check(record: ExecutionRecord) -> bool:
        actual = get(record)
        if actual is None:
            return op == "!="
        if op in ("=", ":"):
            return bool(actual == wanted)
        if op == "!=":
            return bool(actual != wanted)
        if op == "<":
            return bool(actual < wanted)
        if op == ">":
            return bool(actual > wanted)
        if op == "<=":
            return bool(actual <= wanted)
        return bool(actual >= wanted)

    return check


def _parse_time(value: str) -> float:
    import datetime

    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise gexc.InvalidArgument(f"invalid filter: {value!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


def _parse_duration(value: str) -> float:
    try:
        return float(value.removesuffix("s"))
    except ValueError:
        raise gexc.InvalidArgument(f'invalid filter: {value!r} is not a duration such as "10s"') from None


_ORDER_FIELDS: dict[str, Callable[[ExecutionRecord], Any]] = {
    "executionid": lambda r: r.execution_id,
    "starttime": lambda r: (r.started_at, r.seq),
    "endtime": lambda r: (r.ended_at if r.ended_at is not None else float("inf"), r.seq),
    "duration": lambda r: (r.ended_at - r.started_at) if r.ended_at is not None else float("inf"),
    "state": lambda r: State(r.state).name,
    "workflowrevisionid": lambda r: r.revision_id,
}


def _order_key(order_by: str) -> tuple[Callable[[ExecutionRecord], Any], bool] | None:
    parts = order_by.split()
    if not parts:
        return None
    if len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
        raise gexc.InvalidArgument(f"invalid order_by {order_by!r}")
    key = _ORDER_FIELDS.get(parts[0].lower())
    if key is None:
        raise gexc.InvalidArgument(f"invalid order_by: field {parts[0]!r} is not supported")
    return key, len(parts) == 2 and parts[1].lower() == "desc"


# ------------------------------------------------------------------------------------------- helpers


def _label_problems(labels: Mapping[str, str]) -> list[str]:
    problems: list[str] = []
    if len(labels) > MAX_LABELS:
        problems.append(f"labels may hold at most {MAX_LABELS} entries")
    for key, value in labels.items():
        if (
            not key
            or not key[0].isalpha()
            or not key[0].islower()
            or not _LABEL_KEY.match(key)
            or _has_upper(key)
        ):
            problems.append(
                f"label key {key!r} must start with a lowercase letter and contain at most 63 lowercase "
                "letters, digits, underscores and dashes"
            )
        if not _LABEL_KEY.match(value) or _has_upper(value):
            problems.append(
                f"label value {value!r} of {key!r} must contain at most 63 lowercase letters, digits, "
                "underscores and dashes"
            )
    return problems


def _has_upper(text: str) -> bool:
    return any(c.isupper() for c in text)


def _execution_error(error: WorkflowError) -> ex.Execution.Error:
    payload = json.dumps(error.payload, separators=(",", ":"), ensure_ascii=False, default=_json_default)
    context = getattr(error, "context", None)
    if not isinstance(context, str) or not context:
        context = str(error)
    return ex.Execution.Error(
        payload=payload,
        context=context,
        stack_trace=ex.Execution.StackTrace(elements=list(_stack_elements(getattr(error, "stack", None)))),
    )


def _stack_elements(stack: Any) -> Iterable[ex.Execution.StackTraceElement]:
    if not stack:
        return
    for frame in stack:
        if isinstance(frame, Mapping):
            get = frame.get
        elif isinstance(frame, tuple | list):
            values = dict(zip(("routine", "step", "line", "column", "length"), frame, strict=False))
            get = values.get
        else:

            def get(key: str, default: Any = None, frame: Any = frame) -> Any:
                return getattr(frame, key, default)

        position = get("position")
        if isinstance(position, Mapping):
            line, column, length = position.get("line"), position.get("column"), position.get("length")
        else:
            line, column, length = get("line"), get("column"), get("length")
        yield ex.Execution.StackTraceElement(
            step=str(get("step") or ""),
            routine=str(get("routine") or ""),
            position=ex.Execution.StackTraceElement.Position(
                line=int(line or 0), column=int(column or 0), length=int(length or 0)
            ),
        )


def _cancelled_error() -> ex.Execution.Error:
    return ex.Execution.Error(
        payload=json.dumps({"message": "Execution was cancelled."}, separators=(",", ":")),
        context="Execution was cancelled.",
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        raise TypeError("bytes cannot be part of a JSON result; encode them with base64.encode")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _timestamp(epoch_seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromMicroseconds(round(epoch_seconds * 1e6))
    return stamp


def _duration(seconds: float) -> duration_pb2.Duration:
    span = duration_pb2.Duration()
    span.FromMicroseconds(round(max(0.0, seconds) * 1e6))
    return span


def _rfc3339(epoch_seconds: float) -> str:
    return _timestamp(epoch_seconds).ToJsonString()


def _page_size(requested: int, *, default: int, maximum: int) -> int:
    if requested < 0:
        raise gexc.InvalidArgument("page_size must not be negative")
    return min(requested or default, maximum)


def _encode_token(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode()


def _decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raise gexc.InvalidArgument(f"invalid page_token {token!r}") from None
