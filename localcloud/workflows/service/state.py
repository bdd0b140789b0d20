"""The Workflows emulator's state: deployed workflows with their revisions, the long-running operations
their clients poll, and executions (run by :class:`~localcloud.workflows.service.executions.Executions`).

Behaviour (https://cloud.google.com/workflows/docs/reference/rest/v1/projects.locations.workflows and
https://cloud.google.com/workflows/docs/reference/executions/rest/v1/projects.locations.workflows.executions,
google-cloud-workflows 1.24.0 types):

- A workflow gets a new revision id ("000001-a4d") whenever its source, service account or user env vars
  change (https://cloud.google.com/workflows/docs/reference/rest/v1/projects.locations.workflows/patch);
  a description, label or call-log-level change keeps the revision. A source that does not build is
  INVALID_ARGUMENT naming the problem.
- Create, update and delete answer a long-running operation that is already done; the last 1,000 can be
  read back with ``GetOperation``.
- Deleting a workflow cancels and deletes its executions.
- An execution takes its workflow's labels, overridden by its own, its workflow's call-log level
  unless it names one, and its workflow's execution history level (the Python client's ``Execution``
  has no field to override it; https://cloud.google.com/workflows/docs/debug-steps); it runs the latest revision, as the workflow's service account (or the default
  compute one).
- ``ListWorkflows`` sorts by name; ``ListWorkflowRevisions`` newest first; ``ListExecutions`` newest first
  unless ``orderBy`` says otherwise, filtered by ``filter`` (see
  :mod:`~localcloud.workflows.service.filters`).
- An unknown workflow, revision, execution or operation is NOT_FOUND; a workflow id taken is
  ALREADY_EXISTS; what fails the checks of :mod:`~localcloud.workflows.service.validation` is
  INVALID_ARGUMENT.
"""

from __future__ import annotations

import secrets
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud.workflows_v1.types import workflows as wf
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2

from localcloud.workflows.engine.history import StepHistory
from localcloud.workflows.engine.host import SUPPORTED_CONNECTORS
from localcloud.workflows.lang.errors import DeployError
from localcloud.workflows.service import protos, validation
from localcloud.workflows.service.callbacks import CallbackRegistry
from localcloud.workflows.service.executions import Executions
from localcloud.workflows.service.filters import order_key, plan_filter
from localcloud.workflows.service.records import ExecutionRecord, Revision, State, WorkflowRecord
from localcloud.workflows.service.service_host import HostServices

DEFAULT_STEP_LIMIT = 100_000
# "": each workflow's project reports the local cloud's number for its id (localcloud._project).
DEFAULT_PROJECT_NUMBER = ""
# Finished executions kept for Get/List (the real service keeps them 90 days); the oldest go first.
DEFAULT_RETAINED_FINISHED = 50_000
MAX_OPERATIONS_KEPT = 1_000
UPDATABLE_FIELDS = frozenset(
    {
        "description",
        "labels",
        "service_account",
        "source_contents",
        "call_log_level",
        "user_env_vars",
        "execution_history_level",
    }
)

Loader = Callable[[str], Any]


def _default_loader(source: str) -> Any:
    from localcloud.workflows.engine.loader import load_workflow

    return load_workflow(source, filename="workflow.yaml", connectors=SUPPORTED_CONNECTORS)


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
        self._load = loader or _default_loader
        self.workflows: dict[str, WorkflowRecord] = {}
        self.executions = Executions(
            services,
            self.workflows,
            project_number=project_number,
            step_limit=step_limit,
            retained_finished=retained_finished,
        )
        self.operations: OrderedDict[str, operations_pb2.Operation] = OrderedDict()

    # -- workflows

    def create_workflow(
        self, parent: str, workflow_id: str, workflow: wf.Workflow
    ) -> operations_pb2.Operation:
        project_id, location = validation.parent_of(parent)
        validation.check_workflow_id(workflow_id)
        name = f"{parent}/workflows/{workflow_id}"
        if name in self.workflows:
            raise gexc.AlreadyExists(f"Resource '{name}' already exists")
        validation.check_workflow_fields(workflow)
        account = validation.service_account_email(workflow.service_account)
        revision = self._new_revision(None, workflow.source_contents, account, workflow.user_env_vars)
        now = self.clock.now()
        record = WorkflowRecord(
            name=name,
            workflow_id=workflow_id,
            project_id=project_id,
            location=location,
            description=workflow.description,
            labels=dict(workflow.labels),
            call_log_level=int(workflow.call_log_level),
            execution_history_level=int(workflow.execution_history_level),
            created_at=now,
            updated_at=now,
            revisions=[revision],
        )
        self.workflows[name] = record
        return self._workflow_operation(record, "create")

    def workflow(self, name: str) -> WorkflowRecord:
        record = self.workflows.get(name)
        if record is None:
            raise gexc.NotFound(f"Resource '{name}' was not found")
        return record

    def revision(self, name: str, revision_id: str) -> tuple[WorkflowRecord, Revision]:
        """The revision ``revision_id`` of workflow ``name``; the latest if ``revision_id`` is empty."""
        record = self.workflow(name)
        if not revision_id:
            return record, record.latest
        for revision in record.revisions:
            if revision.revision_id == revision_id:
                return record, revision
        raise gexc.NotFound(f"revision {revision_id} of {name} was not found")

    def list_workflows(self, parent: str) -> list[WorkflowRecord]:
        validation.parent_of(parent)
        prefix = parent + "/workflows/"
        return [self.workflows[n] for n in sorted(self.workflows) if n.startswith(prefix)]

    def update_workflow(self, incoming: wf.Workflow, paths: set[str]) -> operations_pb2.Operation:
        """``paths`` are the fields of ``update_mask``; empty means every updatable field."""
        record = self.workflow(incoming.name)
        paths = paths or set(UPDATABLE_FIELDS)
        unknown = paths - UPDATABLE_FIELDS
        if unknown:
            raise gexc.InvalidArgument(
                f"update_mask names fields that cannot be updated: {', '.join(sorted(unknown))}"
            )
        validation.check_workflow_fields(incoming, check_source="source_contents" in paths)
        latest = record.latest
        source = incoming.source_contents if "source_contents" in paths else latest.source
        account = latest.service_account
        if "service_account" in paths:
            account = validation.service_account_email(incoming.service_account)
        env = dict(incoming.user_env_vars) if "user_env_vars" in paths else dict(latest.user_env_vars)
        if (source, account, env) != (latest.source, latest.service_account, dict(latest.user_env_vars)):
            record.revisions.append(self._new_revision(record, source, account, env))
        if "description" in paths:
            record.description = incoming.description
        if "labels" in paths:
            record.labels = dict(incoming.labels)
        if "call_log_level" in paths:
            record.call_log_level = int(incoming.call_log_level)
        if "execution_history_level" in paths:
            record.execution_history_level = int(incoming.execution_history_level)
        record.updated_at = self.clock.now()
        return self._workflow_operation(record, "update")

    def delete_workflow(self, name: str) -> operations_pb2.Operation:
        record = self.workflow(name)
        self.executions.drop(record)
        del self.workflows[name]
        return self._operation(record, "delete", empty_pb2.Empty())

    def compile(self, source: str) -> Any:
        validation.check_source(source)
        try:
            return self._load(source)
        except DeployError as error:
            raise gexc.InvalidArgument(f"failed to build: {error}") from None

    def _new_revision(
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

    # -- operations

    def _workflow_operation(self, record: WorkflowRecord, verb: str) -> operations_pb2.Operation:
        return self._operation(record, verb, wf.Workflow.pb(protos.workflow_proto(record, record.latest)))

    def _operation(self, record: WorkflowRecord, verb: str, response: Any) -> operations_pb2.Operation:
        now = self.clock.now()
        name = (
            f"projects/{record.project_id}/locations/{record.location}/operations/"
            f"operation-{int(now * 1000)}-{uuid.uuid4().hex[:16]}"
        )
        operation = protos.finished_operation(name, now, verb, record.name, response)
        self.operations[name] = operation
        while len(self.operations) > MAX_OPERATIONS_KEPT:
            self.operations.popitem(last=False)
        return operation

    def operation(self, name: str) -> operations_pb2.Operation:
        operation = self.operations.get(name)
        if operation is None:
            raise gexc.NotFound(f"Operation '{name}' was not found")
        return operation

    def list_operations(self, name: str) -> list[operations_pb2.Operation]:
        prefix = name.rstrip("/") + "/operations/"
        return [op for op_name, op in self.operations.items() if op_name.startswith(prefix)]

    def delete_operation(self, name: str) -> None:
        if self.operations.pop(name, None) is None:
            raise gexc.NotFound(f"Operation '{name}' was not found")

    # -- executions

    def create_execution(self, parent: str, execution: Any) -> ExecutionRecord:
        """``execution`` is the raw ``Execution`` message of the request."""
        workflow = self.workflow(parent)
        decoded = validation.checked_execution(execution.argument, execution.labels)
        labels = {**workflow.labels, **dict(execution.labels)}
        call_log_level = int(execution.call_log_level) or workflow.call_log_level
        return self.executions.start(workflow, execution.argument, labels, call_log_level, decoded)

    def execution(self, name: str) -> ExecutionRecord:
        return self.executions.get(name)

    def list_executions(
        self, parent: str, filter_text: str, order_by: str
    ) -> tuple[list[ExecutionRecord], bool]:
        """The executions of workflow ``parent`` that match ``filter_text``, sorted, and whether the sort
        is ``order_by``'s (False: newest first)."""
        workflow = self.workflow(parent)
        predicate, required_labels = plan_filter(filter_text)
        candidates = workflow.executions
        for pair in required_labels:  # an index lookup instead of a scan of every execution
            indexed = workflow.by_label.get(pair, {})
            if len(indexed) < len(candidates):
                candidates = indexed
        records = [r for r in candidates.values() if predicate(r)]
        order = order_key(order_by)
        if order is None:
            records.sort(key=lambda r: -r.seq)
            return records, False
        key, reverse = order
        records.sort(key=key, reverse=reverse)
        return records, True

    def cancel_execution(self, name: str) -> ExecutionRecord:
        record = self.executions.get(name)
        self.executions.cancel(record)
        return record

    async def stop(self) -> None:
        await self.executions.stop()

    # -- step entries (StepEntriesSource)

    def step_history(self, execution: str) -> StepHistory | None:
        record = self.executions.records.get(execution)
        if record is None:
            return None
        return record.history if record.history is not None else StepHistory(self.clock)

    # -- admin pages (AdminSource)

    def admin_execution(self, execution_id: str) -> dict[str, Any] | None:
        record = self.executions.find(execution_id)
        return None if record is None else protos.admin_view(record)

    def admin_executions(self, state: str | None = None) -> list[dict[str, Any]]:
        records = sorted(self.executions.records.values(), key=lambda r: -r.seq)
        if state:
            records = [r for r in records if State(r.state).name == state.upper()]
        return [protos.admin_view(r) for r in records]
