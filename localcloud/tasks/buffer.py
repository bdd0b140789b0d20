"""``BufferTask`` on the REST surface (v2 and v2beta3): a task made from a plain HTTP request to a queue with
queue-level routing, as Google's http_queues samples send it
(``POST /v2beta3/projects/P/locations/L/queues/Q/tasks:buffer`` with any body).

Facts (https://cloud.google.com/tasks/docs/reference/rest/v2beta3/projects.locations.queues.tasks/buffer,
https://cloud.google.com/tasks/docs/choose-task-creation-method):

- REST only: "The BufferTask method is not supported in client libraries" nor "in the RPC API", so it is
  not served on gRPC either.
- "The queue must have HTTP target"; queue-level routing means an ``http_target.uri_override`` with a
  host. Another queue is INVALID_ARGUMENT here (decision: Google's page names no code).
- ``.../tasks/TASK_ID:buffer`` names the task (deduplicated like a CreateTask with that name: ALREADY_EXISTS);
  ``.../tasks:buffer`` gets a generated ID.
- The request body "is written to the HttpRequest payload of the Task"; decision: its ``Content-Type``
  becomes the task's ``Content-Type`` header, and no other header of the buffer request (they address
  Cloud Tasks, e.g. its ``Authorization``) is kept. The task's URL, method and token come from the queue at
  dispatch (``localcloud.tasks.routing``).
- The answer is ``{"task": Task}`` in the BASIC view; errors are Google's JSON error body.

The task is created through the emulator's own CreateTask handler (in process), so validation, faults
and dispatch are those of every task.
"""

from __future__ import annotations

import grpc
from aiohttp import web
from google.cloud.tasks_v2.types import cloudtasks
from google.protobuf import json_format

from localcloud.rest import google_error
from localcloud.rest_server import HTTP_CODES
from localcloud.tasks import routing
from localcloud.tasks.state import QueuePb, TaskPb

_QUEUE = "/{version:v2|v2beta3}/projects/{project}/locations/{location}/queues/{queue}"
_CREATE_TASK = "/google.cloud.tasks.v2.CloudTasks/CreateTask"
_GET_QUEUE = "/google.cloud.tasks.v2.CloudTasks/GetQueue"
_GetQueueRequestPb = cloudtasks.GetQueueRequest.pb()


def routes(channel: grpc.aio.Channel) -> list[web.RouteDef]:
    """The BufferTask routes, calling the Cloud Tasks handlers through ``channel`` (in process)."""
    create = channel.unary_unary(
        _CREATE_TASK,
        request_serializer=lambda message: message.SerializeToString(),
        response_deserializer=TaskPb.FromString,
    )
    get_queue = channel.unary_unary(
        _GET_QUEUE,
        request_serializer=lambda message: message.SerializeToString(),
        response_deserializer=QueuePb.FromString,
    )

    async def buffer(request: web.Request) -> web.StreamResponse:
        info = request.match_info
        queue = f"projects/{info['project']}/locations/{info['location']}/queues/{info['queue']}"
        try:
            found = await get_queue(_GetQueueRequestPb(name=queue))
            if not routing.routes_by_host(found.http_target):
                return google_error(
                    400,
                    "INVALID_ARGUMENT",
                    "BufferTask needs a queue with queue-level routing "
                    f"(http_target.uri_override with a host). Queue: {queue}",
                )
            task = TaskPb()
            if info.get("task_id"):
                task.name = f"{queue}/tasks/{info['task_id']}"
            task.http_request.body = await request.read()
            if request.content_type and request.headers.get("Content-Type"):
                task.http_request.headers["Content-Type"] = request.headers["Content-Type"]
            created = await create(cloudtasks.CreateTaskRequest.pb()(parent=queue, task=task))
        except grpc.aio.AioRpcError as error:
            code = error.code()
            return google_error(HTTP_CODES.get(code, 500), code.name, error.details() or "")
        return web.json_response({"task": json_format.MessageToDict(created)})

    return [
        web.post(f"{_QUEUE}/tasks:buffer", buffer),
        web.post(_QUEUE + "/tasks/{task_id:[A-Za-z0-9_-]+}:buffer", buffer),
    ]
