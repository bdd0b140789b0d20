"""Cloud Tasks v2beta3 (gRPC ``google.cloud.tasks.v2beta3.CloudTasks``), served beside v2 over the same
state: a queue or task created through one version is read, changed and dispatched through the other, as
on Google. No method is implemented twice: each v2beta3 request is converted to its v2 twin (the two
share their field names), handed to :class:`localcloud.tasks.api.CloudTasksApi`, and the answer
converted back. Only the fields v2 lacks are handled here.

The v2beta3-only fields (https://cloud.google.com/tasks/docs/reference/rest/v2beta3/projects.locations.queues,
https://cloud.google.com/tasks/docs/reference/rest/v2beta3/projects.locations.queues.tasks):

- ``Queue.app_engine_http_queue.app_engine_routing_override`` is v2's ``Queue.app_engine_routing_override``
  (App Engine tasks themselves are refused by both versions: this emulator dispatches HTTP tasks only).
- ``Queue.http_target`` is the same message in both versions and is applied at dispatch to every HTTP
  task of the queue (``localcloud.tasks.routing``).
- ``Queue.type``: "Immutable ... When left unspecified, the default value of PUSH is selected"; an
  UpdateQueue that would change it is INVALID_ARGUMENT.
- ``Queue.task_ttl``: "The minimum value is 10 days. The maximum value is 10 years ... Queues created by
  Cloud Tasks have a default task_ttl of 31 days"; ``Queue.tombstone_ttl``: "The minimum value is 1 hour.
  The maximum value is 9 days ... default tombstone_ttl of 1 hour". Both are validated (INVALID_ARGUMENT
  outside those bounds), kept and returned; a queue created through v2 shows the defaults. Decision: they
  are not enforced per queue; tasks live at most 31 days and names stay tombstoned for the emulator's
  window (``task_tombstone_seconds``, one hour by default), whatever a queue says.
- ``Queue.stats`` is output only and, as ``GetQueueRequest.read_mask`` says, "returned only if it was
  explicitly specified in the mask". A ``read_mask`` (GetQueue, ListQueues) returns only the fields it
  names (and the name). ``tasks_count``, ``oldest_estimated_arrival_time`` (the earliest schedule time),
  ``concurrent_dispatches_count`` and ``effective_execution_rate`` (``max_dispatches_per_second`` while
  the queue runs, else 0) are computed; ``executed_last_minute_count`` is not tracked (always 0).
- ``Task.pull_message`` "can only be used for tasks in a queue which has PULL type": in a PUSH queue it is
  INVALID_ARGUMENT; in a PULL queue UNIMPLEMENTED (decision: v2beta3 has no method that leases pull tasks,
  so the emulator does not keep them). A PULL queue takes no HTTP or App Engine task (INVALID_ARGUMENT).
- ``BufferTask`` is not in the v2beta3 gRPC client, so it is not served on gRPC; see
  ``localcloud.tasks.buffer`` for its REST form.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud.tasks_v2.types import cloudtasks as v2
from google.cloud.tasks_v2beta3.types import cloudtasks as beta
from google.cloud.tasks_v2beta3.types import queue as beta_queue
from google.cloud.tasks_v2beta3.types import task as beta_task
from google.iam.v1 import iam_policy_pb2
from google.protobuf import field_mask_pb2, json_format

from localcloud.tasks.api import CloudTasksApi, Context
from localcloud.tasks.state import QueuePb, QueueRecord, QueueState, duration_of, seconds_of, timestamp_of

SERVICE_NAME = "google.cloud.tasks.v2beta3.CloudTasks"

BetaQueuePb: Any = beta_queue.Queue.pb()
BetaTaskPb: Any = beta_task.Task.pb()
QueueStatsPb: Any = beta_queue.QueueStats.pb()
QueueType = beta_queue.Queue.Type

DAY = 24 * 3600.0
DEFAULT_TASK_TTL = 31 * DAY
MIN_TASK_TTL, MAX_TASK_TTL = 10 * DAY, 10 * 365 * DAY
DEFAULT_TOMBSTONE_TTL = 3600.0
MIN_TOMBSTONE_TTL, MAX_TOMBSTONE_TTL = 3600.0, 9 * DAY
_TYPE_PATHS = ("type", "type_")
_APP_ENGINE = "app_engine_http_queue"


@dataclass(frozen=True)
class QueueSettings:
    """What a v2beta3 queue has beyond a v2 one; durations in seconds."""

    type: int = QueueType.PUSH
    task_ttl: float = DEFAULT_TASK_TTL
    tombstone_ttl: float = DEFAULT_TOMBSTONE_TTL


def _json(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _parse(document: dict[str, Any], message_type: Any) -> Any:
    return json_format.ParseDict(document, message_type())


def convert(message: Any, message_type: Any) -> Any:
    """A message as the same-named message of the other version (the fields both versions have)."""
    return _parse(_json(message), message_type)


def queue_to_v2(queue: Any) -> Any:
    document = _json(queue)
    for only_beta in ("task_ttl", "tombstone_ttl", "type_", "stats"):
        document.pop(only_beta, None)
    app_engine = document.pop(_APP_ENGINE, None)
    if app_engine and "app_engine_routing_override" in app_engine:
        document["app_engine_routing_override"] = app_engine["app_engine_routing_override"]
    return _parse(document, QueuePb)


def queue_from_v2(queue: Any, settings: QueueSettings) -> Any:
    document = _json(queue)
    app_engine = document.pop("app_engine_routing_override", None)
    if app_engine is not None:
        document[_APP_ENGINE] = {"app_engine_routing_override": app_engine}
    message = _parse(document, BetaQueuePb)
    message.type_ = settings.type
    message.task_ttl.CopyFrom(duration_of(settings.task_ttl))
    message.tombstone_ttl.CopyFrom(duration_of(settings.tombstone_ttl))
    return message


def settings_of(
    queue: Any, current: QueueSettings | None = None, paths: list[str] | None = None
) -> QueueSettings:
    """``current`` (default: a new queue's) with what ``queue`` sets: every field, or with an update mask
    only the fields it names. A ``type`` left unspecified keeps the current one."""
    current = current or QueueSettings()

    def given(*fields: str) -> bool:
        return not paths or any(field in paths for field in fields)

    task_ttl, tombstone_ttl, queue_type = current.task_ttl, current.tombstone_ttl, current.type
    if given("task_ttl"):
        task_ttl = seconds_of(queue.task_ttl) if queue.HasField("task_ttl") else DEFAULT_TASK_TTL
    if given("tombstone_ttl"):
        tombstone_ttl = (
            seconds_of(queue.tombstone_ttl) if queue.HasField("tombstone_ttl") else DEFAULT_TOMBSTONE_TTL
        )
    if given(*_TYPE_PATHS) and queue.type_:
        queue_type = queue.type_
    return QueueSettings(type=queue_type, task_ttl=task_ttl, tombstone_ttl=tombstone_ttl)


def settings_problems(queue: Any, settings: QueueSettings) -> list[str]:
    """Every bad v2beta3-only field (INVALID_ARGUMENT), named as in the API."""
    problems: list[str] = []
    if not MIN_TASK_TTL <= settings.task_ttl <= MAX_TASK_TTL:
        problems.append("queue.task_ttl must be between 10 days (864000s) and 10 years (315360000s)")
    if not MIN_TOMBSTONE_TTL <= settings.tombstone_ttl <= MAX_TOMBSTONE_TTL:
        problems.append("queue.tombstone_ttl must be between 1 hour (3600s) and 9 days (777600s)")
    if queue.type_ not in (QueueType.TYPE_UNSPECIFIED, QueueType.PULL, QueueType.PUSH):
        problems.append(f"queue.type: unknown value {queue.type_}")
    return problems


def _snake(path: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in path)


class CloudTasksV2beta3Api:
    """The v2beta3 RPCs, each a conversion around the v2 handler of the same name."""

    def __init__(self, api: CloudTasksApi) -> None:
        self.api = api
        self.state = api.state
        # queue name -> (the queue record the settings belong to, its settings); an entry whose record is
        # no longer the live queue of that name (deleted, re-created) is stale and ignored.
        self._settings: dict[str, tuple[QueueRecord, QueueSettings]] = {}

    def settings(self, name: str) -> QueueSettings:
        entry = self._settings.get(name)
        if entry is not None and self.state.queues.get(name) is entry[0]:
            return entry[1]
        return QueueSettings()

    def _remember(self, name: str, settings: QueueSettings) -> None:
        record = self.state.queues.get(name)
        if record is not None:
            self._settings[name] = (record, settings)

    def as_beta(self, queue: Any) -> Any:
        """A v2 Queue as v2beta3 returns it, with its v2beta3-only settings."""
        return queue_from_v2(queue, self.settings(queue.name))

    # queues

    async def CreateQueue(self, request: Any, context: Context) -> Any:
        queue = request.queue
        settings = settings_of(queue)
        problems = settings_problems(queue, settings)
        if problems:
            raise gexc.InvalidArgument("; ".join(problems))
        converted = v2.CreateQueueRequest.pb()(parent=request.parent, queue=queue_to_v2(queue))
        created = await self.api.CreateQueue(converted, context)
        self._remember(created.name, settings)
        return self.as_beta(created)

    async def UpdateQueue(self, request: Any, context: Context) -> Any:
        """Upsert, as v2's: ``type`` may be given only while the queue does not exist or unchanged."""
        queue = request.queue
        paths = [_snake(p) for p in request.update_mask.paths]
        exists = queue.name in self.state.queues
        current = self.settings(queue.name)
        settings = settings_of(queue, current, paths)
        problems = settings_problems(queue, settings)
        if exists and settings.type != current.type:
            problems.append("queue.type is immutable: it is set when the queue is created")
        if problems:
            raise gexc.InvalidArgument("; ".join(problems))
        v2_paths = [_v2_path(p) for p in paths if p not in (*_TYPE_PATHS, "task_ttl", "tombstone_ttl")]
        if paths and not v2_paths and exists:
            updated = self.state.queue(queue.name).message
        else:
            v2_queue = (
                queue_to_v2(queue) if v2_paths or not paths else queue_to_v2(BetaQueuePb(name=queue.name))
            )
            mask = field_mask_pb2.FieldMask(paths=v2_paths)
            updated = await self.api.UpdateQueue(
                v2.UpdateQueueRequest.pb()(queue=v2_queue, update_mask=mask), context
            )
        self._remember(queue.name, settings)
        return self.as_beta(updated)

    async def GetQueue(self, request: Any, context: Context) -> Any:
        found = await self.api.GetQueue(v2.GetQueueRequest.pb()(name=request.name), context)
        return self._read(found, request.read_mask)

    async def ListQueues(self, request: Any, context: Context) -> Any:
        converted = v2.ListQueuesRequest.pb()(
            parent=request.parent,
            filter=request.filter,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        listed = await self.api.ListQueues(converted, context)
        answer = beta.ListQueuesResponse.pb()(next_page_token=listed.next_page_token)
        answer.queues.extend(self._read(q, request.read_mask) for q in listed.queues)
        return answer

    def _read(self, queue: Any, read_mask: Any) -> Any:
        """The queue as GetQueue/ListQueues return it: every field but ``stats`` without a read mask, only
        the named fields (and ``name``) with one."""
        full = self.as_beta(queue)
        paths = [_snake(p).split(".")[0] for p in read_mask.paths]
        if not paths:
            return full
        fields = BetaQueuePb.DESCRIPTOR.fields_by_name
        unknown = [p for p in paths if p not in fields and p not in _TYPE_PATHS]
        if unknown:
            raise gexc.InvalidArgument(f"read_mask: unknown Queue field(s) {', '.join(unknown)}")
        masked = BetaQueuePb(name=full.name)
        for path in paths:
            if path == "stats":
                masked.stats.CopyFrom(self._stats(full.name))
                continue
            name = "type_" if path in _TYPE_PATHS else path
            if fields[name].message_type is not None:
                if full.HasField(name):
                    getattr(masked, name).CopyFrom(getattr(full, name))
            else:
                setattr(masked, name, getattr(full, name))
        return masked

    def _stats(self, name: str) -> Any:
        record = self.state.queue(name)
        stats = QueueStatsPb(
            tasks_count=len(record.tasks),
            concurrent_dispatches_count=record.in_flight,
            effective_execution_rate=(
                record.message.rate_limits.max_dispatches_per_second
                if record.message.state == QueueState.RUNNING
                else 0.0
            ),
        )
        if record.tasks:
            earliest = min(task.schedule_time for task in record.tasks.values())
            stats.oldest_estimated_arrival_time.CopyFrom(timestamp_of(earliest))
        return stats

    # tasks

    async def CreateTask(self, request: Any, context: Context) -> Any:
        self.state.queue(request.parent)  # NOT_FOUND before anything about the task
        kind = request.task.WhichOneof("payload_type")
        pull_queue = self.settings(request.parent).type == QueueType.PULL
        if kind == "pull_message" and not pull_queue:
            raise gexc.InvalidArgument("task.pull_message can only be used in a queue of type PULL")
        if kind == "pull_message":
            raise gexc.MethodNotImplemented(
                "Pull tasks are not served by this emulator: no v2beta3 method leases them"
            )
        if pull_queue:
            raise gexc.InvalidArgument(
                f"The queue is a PULL queue: it takes only pull tasks (task.pull_message). Queue: {request.parent}"
            )
        created = await self.api.CreateTask(convert(request, v2.CreateTaskRequest.pb()), context)
        return convert(created, BetaTaskPb)


def _v2_path(path: str) -> str:
    """An update-mask path of a v2beta3 Queue as the path of the v2 Queue."""
    if path == _APP_ENGINE or path == f"{_APP_ENGINE}.app_engine_routing_override":
        return "app_engine_routing_override"
    return path.replace(f"{_APP_ENGINE}.", "", 1) if path.startswith(f"{_APP_ENGINE}.") else path


Handler = Callable[[Any, Context], Awaitable[Any]]


def _relay(api: CloudTasksApi, name: str, v2_request: Any, beta_response: Any | None) -> Handler:
    """A v2beta3 handler that converts the request to ``v2_request``, runs the v2 handler ``name`` and
    converts its answer to ``beta_response`` (None: the answer is the same message in both versions)."""
    v2_handler: Handler = getattr(api, name)

    async def relay(request: Any, context: Context) -> Any:
        answer = await v2_handler(convert(request, v2_request), context)
        return answer if beta_response is None else convert(answer, beta_response)

    relay.__name__ = name
    return relay


def handlers(beta_api: CloudTasksV2beta3Api) -> dict[str, tuple[Handler, Any]]:
    """Method name -> (handler, request type) of the v2beta3 service."""
    api = beta_api.api

    def request_types(name: str) -> tuple[Any, Any]:
        return getattr(v2, f"{name}Request").pb(), getattr(beta, f"{name}Request").pb()

    table: dict[str, tuple[Handler, Any]] = {
        "ListQueues": (beta_api.ListQueues, beta.ListQueuesRequest.pb()),
        "GetQueue": (beta_api.GetQueue, beta.GetQueueRequest.pb()),
        "CreateQueue": (beta_api.CreateQueue, beta.CreateQueueRequest.pb()),
        "UpdateQueue": (beta_api.UpdateQueue, beta.UpdateQueueRequest.pb()),
        "GetIamPolicy": (api.GetIamPolicy, iam_policy_pb2.GetIamPolicyRequest),
        "SetIamPolicy": (api.SetIamPolicy, iam_policy_pb2.SetIamPolicyRequest),
        "TestIamPermissions": (api.TestIamPermissions, iam_policy_pb2.TestIamPermissionsRequest),
        "CreateTask": (beta_api.CreateTask, beta.CreateTaskRequest.pb()),
    }
    for name in ("DeleteQueue", "PurgeQueue", "PauseQueue", "ResumeQueue"):
        v2_request, beta_request = request_types(name)
        table[name] = (_relay_queue(beta_api, name, v2_request), beta_request)
    for name, beta_response in (
        ("ListTasks", beta.ListTasksResponse.pb()),
        ("GetTask", BetaTaskPb),
        ("RunTask", BetaTaskPb),
        ("DeleteTask", None),
    ):
        v2_request, beta_request = request_types(name)
        table[name] = (_relay(api, name, v2_request, beta_response), beta_request)
    return table


def _relay_queue(beta_api: CloudTasksV2beta3Api, name: str, v2_request: Any) -> Handler:
    """Like :func:`_relay` for the RPCs that answer a Queue (with the v2beta3-only settings) or Empty."""
    v2_handler: Handler = getattr(beta_api.api, name)

    async def relay(request: Any, context: Context) -> Any:
        answer = await v2_handler(convert(request, v2_request), context)
        return beta_api.as_beta(answer) if answer.DESCRIPTOR.name == "Queue" else answer

    relay.__name__ = name
    return relay
