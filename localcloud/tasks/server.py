"""Serve the Cloud Tasks emulator over gRPC on ``ctx.config.tasks`` (port 0 picks a free one) and run its
dispatcher on the same event loop; v2 and v2beta3 (``localcloud.tasks.v2beta3``) are served side by side
over one state, on gRPC and over REST on ``ctx.config.rest_address("tasks")`` (see
``localcloud.rest_server``), where the REST-only BufferTask is served too (``localcloud.tasks.buffer``)."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from localcloud import _grpc
from localcloud._project import ProjectNumbers, accept_numbers
from localcloud.rest_server import CLOUD_TASKS_TRANSPORTS, RestServer, ServedTwice
from localcloud.runtime import Context
from localcloud.tasks import buffer, v2beta3
from localcloud.tasks.api import REQUEST_TYPES, CloudTasksApi
from localcloud.tasks.dispatcher import IDLE_REUSE_SECONDS, Dispatcher
from localcloud.tasks.faults import Faults, handler
from localcloud.tasks.state import TASK_TOMBSTONE_SECONDS, TasksState

SERVICE_NAME = "google.cloud.tasks.v2.CloudTasks"


@dataclass
class CloudTasksService(ServedTwice):
    name: str
    address: str
    state: TasksState
    dispatcher: Dispatcher
    server: grpc.aio.Server
    faults: Faults
    rest: RestServer | None = None

    async def stop(self) -> None:
        await self.stop_surfaces()
        await self.dispatcher.stop()


def handlers(api: CloudTasksApi) -> list[grpc.GenericRpcHandler]:
    """The Cloud Tasks API (v2, and v2beta3 over the same state), and beside it the test-only faults
    service (``localcloud.tasks.faults``)."""
    methods = {
        name: _grpc.unary(getattr(api, name), request_type, method=f"{SERVICE_NAME}/{name}")
        for name, request_type in REQUEST_TYPES.items()
    }
    beta_methods = {
        name: _grpc.unary(call, request_type, method=f"{v2beta3.SERVICE_NAME}/{name}")
        for name, (call, request_type) in v2beta3.handlers(v2beta3.CloudTasksV2beta3Api(api)).items()
    }
    return [
        _grpc.service(SERVICE_NAME, methods),
        _grpc.service(v2beta3.SERVICE_NAME, beta_methods),
        handler(api.faults),
    ]


async def start(
    ctx: Context,
    *,
    task_tombstone_seconds: float = TASK_TOMBSTONE_SECONDS,
    idle_reuse_seconds: float = IDLE_REUSE_SECONDS,
) -> CloudTasksService:
    state = TasksState(ctx.clock, task_tombstone_seconds=task_tombstone_seconds)
    faults = Faults()
    dispatcher = Dispatcher(
        state, ctx.authority, idle_reuse_seconds=idle_reuse_seconds, faults=faults, quotas=ctx.quotas
    )
    await dispatcher.start()
    address = ctx.config.tasks
    tables = handlers(CloudTasksApi(state, dispatcher, faults))
    # A project number in a name is the project it stands for; answers name it by id, the form of Cloud
    # Tasks' names (https://cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues#Queue).
    accept_numbers(tables, ProjectNumbers(ctx.config.project_id))
    try:
        server = await _grpc.start_server(address, tables)
    except BaseException:
        await dispatcher.stop()
        raise
    host = address.rpartition(":")[0] or "127.0.0.1"
    service = CloudTasksService(
        name="tasks",
        address=f"{host}:{server.bound_port}",
        state=state,
        dispatcher=dispatcher,
        server=server,
        faults=faults,
    )
    await service.open_rest(ctx.config.rest_address("tasks"), tables, CLOUD_TASKS_TRANSPORTS, buffer.routes)
    return service
