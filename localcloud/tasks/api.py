"""Cloud Tasks RPC handlers, named after the RPCs of ``google.cloud.tasks.v2.CloudTasks``.

Requests and responses are the raw protobuf classes behind the proto-plus types of
``google-cloud-tasks``. Rules live in :mod:`localcloud.tasks.state`; dispatching in
:mod:`localcloud.tasks.dispatcher`. ``BatchCreateTasks``/``BatchDeleteTasks`` (long-running operations)
and the CMEK methods are not served (UNIMPLEMENTED).
"""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc
from google.api_core import exceptions as gexc
from google.cloud.tasks_v2.types import cloudtasks
from google.iam.v1 import iam_policy_pb2, policy_pb2
from google.protobuf import empty_pb2

from localcloud._paging import CHECKED_OFFSETS
from localcloud.tasks.dispatcher import Dispatcher
from localcloud.tasks.faults import Faults, lost_answer, refusal
from localcloud.tasks.state import QueuePb, QueueState, TaskPb, TaskRecord, TasksState, View

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
PAGES = CHECKED_OFFSETS


def task_view(task: TaskRecord, view: int) -> Any:
    """BASIC (the default) leaves out the request body and headers, which may be large or sensitive."""
    message = TaskPb()
    message.CopyFrom(task.message)
    message.view = View.FULL if view == View.FULL else View.BASIC
    if message.view == View.BASIC:
        message.http_request.ClearField("body")
        message.http_request.ClearField("headers")
    return message


def queue_message(message: Any) -> Any:
    copy = QueuePb()
    copy.CopyFrom(message)
    return copy


class CloudTasksApi:
    def __init__(self, state: TasksState, dispatcher: Dispatcher, faults: Faults | None = None) -> None:
        self.state = state
        self.dispatcher = dispatcher
        # Test-only one-shot faults (localcloud.tasks.faults); none armed = the real behaviour.
        self.faults = faults or Faults()

    # queues

    async def CreateQueue(self, request: Any, context: Context) -> Any:
        return queue_message(self.state.create_queue(request.parent, request.queue).message)

    async def UpdateQueue(self, request: Any, context: Context) -> Any:
        record = self.state.update_queue(request.queue, list(request.update_mask.paths))
        self.dispatcher.wake()
        return queue_message(record.message)

    async def GetQueue(self, request: Any, context: Context) -> Any:
        return queue_message(self.state.queue(request.name).message)

    async def ListQueues(self, request: Any, context: Context) -> Any:
        queues = self.state.list_queues(request.parent, request.filter)
        chunk, token = PAGES.offset_page(queues, request.page_size, request.page_token)
        response = cloudtasks.ListQueuesResponse.pb()(next_page_token=token)
        response.queues.extend(q.message for q in chunk)
        return response

    async def DeleteQueue(self, request: Any, context: Context) -> Any:
        self.state.delete_queue(request.name)
        return empty_pb2.Empty()

    async def PurgeQueue(self, request: Any, context: Context) -> Any:
        return queue_message(self.state.purge_queue(request.name).message)

    async def PauseQueue(self, request: Any, context: Context) -> Any:
        return queue_message(self.state.set_queue_state(request.name, QueueState.PAUSED).message)

    async def ResumeQueue(self, request: Any, context: Context) -> Any:
        record = self.state.set_queue_state(request.name, QueueState.RUNNING)
        self.dispatcher.wake()
        return queue_message(record.message)

    async def GetIamPolicy(self, request: Any, context: Context) -> policy_pb2.Policy:
        policy = policy_pb2.Policy()
        policy.CopyFrom(self.state.queue(request.resource).policy)
        return policy

    async def SetIamPolicy(self, request: Any, context: Context) -> policy_pb2.Policy:
        record = self.state.queue(request.resource)
        record.policy = policy_pb2.Policy()
        record.policy.CopyFrom(request.policy)
        return await self.GetIamPolicy(request, context)

    async def TestIamPermissions(self, request: Any, context: Context) -> Any:
        self.state.queue(request.resource)
        allowed = [p for p in request.permissions if p.startswith("cloudtasks.")]
        return iam_policy_pb2.TestIamPermissionsResponse(permissions=allowed)

    # tasks

    async def CreateTask(self, request: Any, context: Context) -> Any:
        fault = self.faults.take(request.parent, request.task.name)
        if fault is not None and fault.kind == "permission_denied":
            raise refusal()
        _, task = self.state.create_task(request.parent, request.task)
        self.dispatcher.schedule(task)
        if fault is not None:  # lose_answer: created, but the caller never learns it
            raise lost_answer()
        return task_view(task, request.response_view)

    async def GetTask(self, request: Any, context: Context) -> Any:
        _, task = self.state.task(request.name)
        return task_view(task, request.response_view)

    async def ListTasks(self, request: Any, context: Context) -> Any:
        queue = self.state.queue(request.parent)
        tasks = sorted(queue.tasks.values(), key=lambda t: (t.schedule_time, t.name))
        chunk, token = PAGES.offset_page(tasks, request.page_size, request.page_token)
        response = cloudtasks.ListTasksResponse.pb()(next_page_token=token)
        response.tasks.extend(task_view(t, request.response_view) for t in chunk)
        return response

    async def DeleteTask(self, request: Any, context: Context) -> Any:
        queue, task = self.state.task(request.name)
        self.state.remove_task(queue, task.name)
        return empty_pb2.Empty()

    async def RunTask(self, request: Any, context: Context) -> Any:
        queue, task = self.state.task(request.name)
        if queue.message.state == QueueState.DISABLED:
            raise gexc.FailedPrecondition(f"The queue is disabled. Queue: {queue.name}")
        self.dispatcher.run_now(queue, task)
        return task_view(task, request.response_view)


REQUEST_TYPES: dict[str, Any] = {
    "ListQueues": cloudtasks.ListQueuesRequest.pb(),
    "GetQueue": cloudtasks.GetQueueRequest.pb(),
    "CreateQueue": cloudtasks.CreateQueueRequest.pb(),
    "UpdateQueue": cloudtasks.UpdateQueueRequest.pb(),
    "DeleteQueue": cloudtasks.DeleteQueueRequest.pb(),
    "PurgeQueue": cloudtasks.PurgeQueueRequest.pb(),
    "PauseQueue": cloudtasks.PauseQueueRequest.pb(),
    "ResumeQueue": cloudtasks.ResumeQueueRequest.pb(),
    "GetIamPolicy": iam_policy_pb2.GetIamPolicyRequest,
    "SetIamPolicy": iam_policy_pb2.SetIamPolicyRequest,
    "TestIamPermissions": iam_policy_pb2.TestIamPermissionsRequest,
    "ListTasks": cloudtasks.ListTasksRequest.pb(),
    "GetTask": cloudtasks.GetTaskRequest.pb(),
    "CreateTask": cloudtasks.CreateTaskRequest.pb(),
    "DeleteTask": cloudtasks.DeleteTaskRequest.pb(),
    "RunTask": cloudtasks.RunTaskRequest.pb(),
}
