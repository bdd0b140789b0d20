"""One-shot faults on ``CreateTask``, so tests can see what a caller does when Cloud Tasks misbehaves.

Not a Google API: the admin service ``localcloud.tasks.admin.v1.Faults`` is served beside the real one on
the emulator's port (request and response are ``google.protobuf.Struct``; ``fault_client`` is the test
side). ``InjectFault {kind, queue?, task_prefix?}`` arms a fault that fires once, on the next
``CreateTask`` whose parent is ``queue`` or whose task name starts with ``task_prefix`` (one of the two
is required); ``ClearFaults {}`` disarms every fault. Kinds:

- ``permission_denied``: the create is refused with PERMISSION_DENIED (HTTP 403 through REST and the
  Workflows connector), as after an IAM change; nothing is created.
- ``lose_answer``: the task is created, then the caller gets UNAVAILABLE (HTTP 503), as when the answer
  is lost on its way back; a retry of the same create with the same name meets ALREADY_EXISTS.

With nothing armed, ``CreateTask`` behaves exactly as without this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from google.api_core import exceptions as gexc
from google.protobuf import json_format, struct_pb2

from localcloud import _grpc

SERVICE_NAME = "localcloud.tasks.admin.v1.Faults"
KINDS = ("permission_denied", "lose_answer")


@dataclass(frozen=True)
class Fault:
    kind: str
    queue: str = ""
    task_prefix: str = ""

    def matches(self, parent: str, task_name: str) -> bool:
        if self.queue and parent != self.queue:
            return False
        return not self.task_prefix or task_name.startswith(self.task_prefix)


class Faults:
    """The armed faults, first armed first fired."""

    def __init__(self) -> None:
        self._armed: list[Fault] = []

    def arm(self, kind: str, *, queue: str = "", task_prefix: str = "") -> Fault:
        if kind not in KINDS:
            raise gexc.InvalidArgument(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if not queue and not task_prefix:
            raise gexc.InvalidArgument("a fault needs a queue or a task_prefix")
        fault = Fault(kind, queue, task_prefix)
        self._armed.append(fault)
        return fault

    def clear(self) -> None:
        self._armed.clear()

    def take(self, parent: str, task_name: str) -> Fault | None:
        """The first armed fault for this create, disarmed; None when none matches."""
        for index, fault in enumerate(self._armed):
            if fault.matches(parent, task_name):
                return self._armed.pop(index)
        return None


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
        )
        return _struct({"kind": fault.kind, "queue": fault.queue, "task_prefix": fault.task_prefix})

    async def ClearFaults(self, request: struct_pb2.Struct, context: Any) -> struct_pb2.Struct:
        self.faults.clear()
        return _struct({})


def handler(faults: Faults) -> grpc.GenericRpcHandler:
    api = FaultsApi(faults)
    methods = {
        name: _grpc.unary(getattr(api, name), struct_pb2.Struct, method=f"{SERVICE_NAME}/{name}")
        for name in ("InjectFault", "ClearFaults")
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
