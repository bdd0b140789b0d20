"""Test-only faults, so tests can see what a caller does when Cloud Tasks or the platform misbehaves.

Not a Google API: the admin service ``localcloud.tasks.admin.v1.Faults`` is served beside the real one on
the emulator's port (request and response are ``google.protobuf.Struct``; ``fault_client`` is the test
side). ``InjectFault {kind, queue?, task_prefix?, status?, times?}`` arms a fault that fires on the next
``times`` (default 1) matching operations, those whose queue is ``queue`` or whose task name starts with
``task_prefix`` (one of the two is required); ``ListFaults {}`` answers ``{faults: [{kind, queue,
task_prefix, status, remaining}]}``, the faults not yet spent; ``ClearFaults {}`` disarms every fault.
Kinds:

- ``permission_denied`` (on ``CreateTask``): the create is refused with PERMISSION_DENIED (HTTP 403
  through REST and the Workflows connector), as after an IAM change; nothing is created.
- ``lose_answer`` (on ``CreateTask``): the task is created, then the caller gets UNAVAILABLE (HTTP 503),
  as when the answer is lost on its way back; a retry of the same create with the same name meets
  ALREADY_EXISTS.
- ``refuse_dispatch`` (on a dispatch): the platform in front of the target is busy (no instance free)
  and answers ``status`` (429 or 503, default 503) itself, as Cloud Run does when no instance is
  available (https://cloud.google.com/run/docs/troubleshooting). The request never reaches the target.
  Cloud Tasks records a failed attempt that never reached the handler: ``dispatch_count`` (and so the
  next ``X-CloudTasks-TaskRetryCount``) grows, ``response_count`` and ``X-CloudTasks-TaskExecutionCount``
  do not ("the total number of times that the task has received a response from the handler",
  https://cloud.google.com/tasks/docs/creating-http-target-tasks#handler); the next dispatch carries
  ``X-CloudTasks-TaskPreviousResponse: status``, and the retry follows the queue's backoff like any
  other failed attempt.

With nothing armed, the emulator behaves exactly as without this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from google.api_core import exceptions as gexc
from google.protobuf import json_format, struct_pb2

from localcloud import _grpc

SERVICE_NAME = "localcloud.tasks.admin.v1.Faults"
CREATE_KINDS = ("permission_denied", "lose_answer")
DISPATCH_KINDS = ("refuse_dispatch",)
KINDS = CREATE_KINDS + DISPATCH_KINDS
# What a busy platform answers for a target it cannot reach: 429 (no instance may be added) or 503.
REFUSAL_STATUSES = (429, 503)
DEFAULT_REFUSAL_STATUS = 503


@dataclass(frozen=True)
class Fault:
    kind: str
    queue: str = ""
    task_prefix: str = ""
    # refuse_dispatch: the HTTP status the platform answers; 0 for the other kinds.
    status: int = 0

    def matches(self, parent: str, task_name: str) -> bool:
        if self.queue and parent != self.queue:
            return False
        return not self.task_prefix or task_name.startswith(self.task_prefix)


@dataclass
class _Armed:
    fault: Fault
    remaining: int


class Faults:
    """The armed faults, first armed first fired."""

    def __init__(self) -> None:
        self._armed: list[_Armed] = []

    def arm(
        self, kind: str, *, queue: str = "", task_prefix: str = "", status: int = 0, times: int = 1
    ) -> Fault:
        if kind not in KINDS:
            raise gexc.InvalidArgument(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if not queue and not task_prefix:
            raise gexc.InvalidArgument("a fault needs a queue or a task_prefix")
        if times < 1:
            raise gexc.InvalidArgument(f"times must be at least 1, got {times}")
        if kind in DISPATCH_KINDS:
            status = status or DEFAULT_REFUSAL_STATUS
            if status not in REFUSAL_STATUSES:
                raise gexc.InvalidArgument(f"status must be 429 or 503, got {status}")
        elif status:
            raise gexc.InvalidArgument(f"a {kind} fault takes no status")
        fault = Fault(kind, queue, task_prefix, status)
        self._armed.append(_Armed(fault, times))
        return fault

    def clear(self) -> None:
        self._armed.clear()

    def take(self, parent: str, task_name: str, kinds: tuple[str, ...] = CREATE_KINDS) -> Fault | None:
        """The first armed fault of ``kinds`` for this operation, one use spent; None when none matches."""
        for armed in self._armed:
            if armed.fault.kind in kinds and armed.fault.matches(parent, task_name):
                armed.remaining -= 1
                if armed.remaining == 0:
                    self._armed.remove(armed)
                return armed.fault
        return None

    def armed(self) -> list[dict[str, Any]]:
        return [
            {
                "kind": a.fault.kind,
                "queue": a.fault.queue,
                "task_prefix": a.fault.task_prefix,
                "status": a.fault.status,
                "remaining": a.remaining,
            }
            for a in self._armed
        ]


def refusal() -> gexc.GoogleAPICallError:
    return gexc.PermissionDenied(
        'The principal (user or service account) lacks IAM permission "cloudtasks.tasks.create" for the '
        "resource (or the resource may not exist)."
    )


def lost_answer() -> gexc.GoogleAPICallError:
    return gexc.ServiceUnavailable("The service is currently unavailable.")


class FaultsApi:
    def __init__(self, faults: Faults) -> None:
        self.faults = faults

    async def InjectFault(self, request: struct_pb2.Struct, context: Any) -> struct_pb2.Struct:
        fields = json_format.MessageToDict(request)
        fault = self.faults.arm(
            str(fields.get("kind", "")),
            queue=str(fields.get("queue", "")),
            task_prefix=str(fields.get("task_prefix", "")),
            status=_whole(fields, "status", 0),
            times=_whole(fields, "times", 1),
        )
        return _struct(
            {
                "kind": fault.kind,
                "queue": fault.queue,
                "task_prefix": fault.task_prefix,
                "status": fault.status,
            }
        )

    async def ListFaults(self, request: struct_pb2.Struct, context: Any) -> struct_pb2.Struct:
        return _struct({"faults": self.faults.armed()})

    async def ClearFaults(self, request: struct_pb2.Struct, context: Any) -> struct_pb2.Struct:
        self.faults.clear()
        return _struct({})


def _whole(fields: dict[str, Any], key: str, default: int) -> int:
    """A Struct carries numbers as doubles: ``times: 2`` arrives as 2.0."""
    value = fields.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise gexc.InvalidArgument(f"{key} must be a whole number, got {value!r}")
    return int(value)


def handler(faults: Faults) -> grpc.GenericRpcHandler:
    api = FaultsApi(faults)
    methods = {
        name: _grpc.unary(getattr(api, name), struct_pb2.Struct, method=f"{SERVICE_NAME}/{name}")
        for name in ("InjectFault", "ListFaults", "ClearFaults")
    }
    return _grpc.service(SERVICE_NAME, methods)


def fault_client(channel: grpc.Channel, method: str = "InjectFault") -> Any:
    """The admin call on a (sync) channel to the emulator: ``fault_client(ch)(Struct(...))``."""
    return channel.unary_unary(
        f"/{SERVICE_NAME}/{method}",
        request_serializer=struct_pb2.Struct.SerializeToString,
        response_deserializer=struct_pb2.Struct.FromString,
    )


def _struct(fields: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(fields)
    return message
