"""Records as the messages the APIs answer: ``Workflow``, ``Execution`` (a raw protobuf message, sent
as is by the gRPC shell), finished long-running ``Operation``\\ s, ``Execution.Error`` from an engine error,
and the JSON the admin pages show.

Times are protobuf ``Timestamp``\\ s to the microsecond; ``argument`` and ``result`` are JSON strings, and
a result holding bytes is not JSON (``base64.encode`` them first), as in the real service.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from google.cloud.workflows.executions_v1.types import executions as ex
from google.cloud.workflows_v1.types import workflows as wf
from google.longrunning import operations_pb2
from google.protobuf import any_pb2, duration_pb2, timestamp_pb2

from localcloud._paging import Paging
from localcloud.workflows.lang.errors import WorkflowError
from localcloud.workflows.service.records import ExecutionRecord, Revision, State, WorkflowRecord

_EXECUTION_PB: Any = ex.Execution.pb()
_STACK_FIELDS = ("routine", "step", "line", "column", "length")


def execution_proto(record: ExecutionRecord, view: int = ex.ExecutionView.FULL) -> Any:
    """BASIC leaves out argument, labels, result, error and status."""
    message = _EXECUTION_PB(
        name=record.name,
        start_time=timestamp(record.started_at),
        state=record.state,
        workflow_revision_id=record.revision_id,
    )
    if record.ended_at is not None:
        message.end_time.CopyFrom(timestamp(record.ended_at))
        message.duration.CopyFrom(duration(record.ended_at - record.started_at))
    if view == ex.ExecutionView.BASIC:
        return message
    message.argument = record.argument
    message.labels.update(record.labels)
    message.call_log_level = record.call_log_level
    if record.result is not None:
        message.result = record.result
    if record.error is not None:
        message.error.CopyFrom(ex.Execution.Error.pb(record.error))
    current = record.current_step()
    if current is not None:
        message.status.current_steps.add(routine=current[0], step=current[1])
    return message


def workflow_proto(record: WorkflowRecord, revision: Revision) -> wf.Workflow:
    return wf.Workflow(
        name=record.name,
        description=record.description,
        state=wf.Workflow.State.ACTIVE,
        revision_id=revision.revision_id,
        create_time=timestamp(record.created_at),
        update_time=timestamp(record.updated_at),
        revision_create_time=timestamp(revision.created_at),
        labels=dict(record.labels),
        service_account=revision.service_account,
        source_contents=revision.source,
        call_log_level=record.call_log_level,
        execution_history_level=record.execution_history_level,
        user_env_vars=dict(revision.user_env_vars),
    )


def finished_operation(
    name: str, now: float, verb: str, target: str, response: Any
) -> operations_pb2.Operation:
    """A long-running operation that is already done, as every Workflows mutation answers locally."""
    metadata = wf.OperationMetadata(
        create_time=timestamp(now), end_time=timestamp(now), target=target, verb=verb, api_version="v1"
    )
    packed_metadata = any_pb2.Any()
    packed_metadata.Pack(wf.OperationMetadata.pb(metadata))
    packed_response = any_pb2.Any()
    packed_response.Pack(response)
    return operations_pb2.Operation(name=name, done=True, metadata=packed_metadata, response=packed_response)


def pages(default_size: int, max_size: int) -> Paging:
    """The page rules of a Workflows List method: base64 tokens, a negative size refused."""
    return Paging(
        default_size=default_size,
        max_size=max_size,
        negative_size_error="page_size must not be negative",
        base64_tokens=True,
        offsets_checked=False,
    )


def admin_view(record: ExecutionRecord) -> dict[str, Any]:
    """An execution on the admin pages (not a Google resource): state, billable steps (``billableSteps``
    one per step, ``billableStepsPerAssignment`` one per variable assignment: ``engine/metering.py``),
    current step."""
    current = record.current_step()
    return {
        "name": record.name,
        "executionId": record.execution_id,
        "workflow": record.workflow,
        "workflowRevisionId": record.revision_id,
        "state": State(record.state).name,
        "startTime": rfc3339(record.started_at),
        "endTime": rfc3339(record.ended_at) if record.ended_at is not None else None,
        "billableSteps": record.billable_steps(),
        "billableStepsPerAssignment": record.billable_steps_per_assignment(),
        "currentStep": {"routine": current[0], "step": current[1]} if current else None,
        "labels": dict(record.labels),
    }


def json_result(result: Any) -> str:
    """``result`` as the execution's JSON string; ``TypeError`` or ``ValueError`` if it is not JSON."""
    return json.dumps(result, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def execution_error(error: WorkflowError) -> ex.Execution.Error:
    payload = json.dumps(error.payload, separators=(",", ":"), ensure_ascii=False, default=_json_default)
    context = getattr(error, "context", None)
    if not isinstance(context, str) or not context:
        context = str(error)
    return ex.Execution.Error(
        payload=payload,
        context=context,
        stack_trace=ex.Execution.StackTrace(elements=list(_stack_elements(getattr(error, "stack", None)))),
    )


def cancelled_error() -> ex.Execution.Error:
    return ex.Execution.Error(
        payload=json.dumps({"message": "Execution was cancelled."}, separators=(",", ":")),
        context="Execution was cancelled.",
    )


def _stack_elements(stack: Any) -> Iterable[ex.Execution.StackTraceElement]:
    """A frame may be a mapping, a (routine, step, line, column, length) sequence or an object."""
    for frame in stack or ():
        if isinstance(frame, Mapping):
            get = frame.get
        elif isinstance(frame, tuple | list):
            get = dict(zip(_STACK_FIELDS, frame, strict=False)).get
        else:

            def get(key: str, default: Any = None, frame: Any = frame) -> Any:
                return getattr(frame, key, default)

        position = get("position")
        where = position if isinstance(position, Mapping) else {k: get(k) for k in _STACK_FIELDS[2:]}
        yield ex.Execution.StackTraceElement(
            step=str(get("step") or ""),
            routine=str(get("routine") or ""),
            position=ex.Execution.StackTraceElement.Position(
                line=int(where.get("line") or 0),
                column=int(where.get("column") or 0),
                length=int(where.get("length") or 0),
            ),
        )


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        raise TypeError("bytes cannot be part of a JSON result; encode them with base64.encode")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def timestamp(epoch_seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromMicroseconds(round(epoch_seconds * 1e6))
    return stamp


def duration(seconds: float) -> duration_pb2.Duration:
    span = duration_pb2.Duration()
    span.FromMicroseconds(round(max(0.0, seconds) * 1e6))
    return span


def rfc3339(epoch_seconds: float) -> str:
    return timestamp(epoch_seconds).ToJsonString()
