"""Serve the Workflows engine: the Workflows, Operations and Executions gRPC APIs on
``ctx.config.workflows`` and the callback endpoints plus admin pages over HTTP on
``ctx.config.workflows_http`` (port 0 picks a free port for either; callback URLs use the bound one)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiohttp
import grpc
from aiohttp import web
from google.cloud.workflows.executions_v1.types import executions as ex
from google.cloud.workflows_v1.types import workflows as wf
from google.longrunning import operations_pb2

from localcloud import _grpc
from localcloud.runtime import Context
from localcloud.workflows.engine.stdlib.http import new_session
from localcloud.workflows.service.callbacks import CallbackRegistry, http_app
from localcloud.workflows.service.connectors import Connectors
from localcloud.workflows.service.service_host import HostServices, internal_prefixes_from_env
from localcloud.workflows.service.state import ExecutionsApi, OperationsApi, WorkflowsApi, WorkflowsState

WORKFLOWS_SERVICE = "google.cloud.workflows.v1.Workflows"
OPERATIONS_SERVICE = "google.longrunning.Operations"
EXECUTIONS_SERVICE = "google.cloud.workflows.executions.v1.Executions"

log = logging.getLogger("localcloud.workflows")


@dataclass
class WorkflowsService:
    name: str
    address: str
    http_address: str
    state: WorkflowsState
    server: grpc.aio.Server
    runner: web.AppRunner
    connectors: Connectors
    session: aiohttp.ClientSession

    @property
    def http_url(self) -> str:
        return f"http://{self.http_address}"

    async def stop(self) -> None:
        await self.state.stop()
        await self.server.stop(grace=0.5)
        await self.runner.cleanup()
        await self.connectors.close()
        await self.session.close()


def handlers(state: WorkflowsState) -> list[grpc.GenericRpcHandler]:
    workflows, operations, executions = WorkflowsApi(state), OperationsApi(state), ExecutionsApi(state)

    def table(service: str, api: object, methods: dict[str, object]) -> grpc.GenericRpcHandler:
        return _grpc.service(
            service,
            {n: _grpc.unary(getattr(api, n), t, method=f"{service}/{n}") for n, t in methods.items()},
        )

    return [
        table(
            WORKFLOWS_SERVICE,
            workflows,
            {
                "CreateWorkflow": wf.CreateWorkflowRequest,
                "GetWorkflow": wf.GetWorkflowRequest,
                "ListWorkflows": wf.ListWorkflowsRequest,
                "UpdateWorkflow": wf.UpdateWorkflowRequest,
                "DeleteWorkflow": wf.DeleteWorkflowRequest,
                "ListWorkflowRevisions": wf.ListWorkflowRevisionsRequest,
            },
        ),
        table(
            OPERATIONS_SERVICE,
            operations,
            {
                "GetOperation": operations_pb2.GetOperationRequest,
                "ListOperations": operations_pb2.ListOperationsRequest,
                "DeleteOperation": operations_pb2.DeleteOperationRequest,
            },
        ),
        table(
            EXECUTIONS_SERVICE,
            executions,
            {  # raw protobuf classes: these run once or more per saga
                "CreateExecution": ex.CreateExecutionRequest.pb(),
                "GetExecution": ex.GetExecutionRequest.pb(),
                "ListExecutions": ex.ListExecutionsRequest.pb(),
                "CancelExecution": ex.CancelExecutionRequest.pb(),
            },
        ),
    ]


async def start(ctx: Context, *, internal_url_prefixes: tuple[str, ...] | None = None) -> WorkflowsService:
    """``internal_url_prefixes`` defaults to ``LOCALCLOUD_INTERNAL_URL_PREFIXES`` from the environment."""
    http_host, _, http_port = ctx.config.workflows_http.rpartition(":")
    http_host = http_host or "127.0.0.1"
    callbacks = CallbackRegistry(clock=ctx.clock)
    connectors = Connectors(ctx.config)
    prefixes = internal_prefixes_from_env() if internal_url_prefixes is None else internal_url_prefixes
    session = new_session()
    services = HostServices(callbacks, connectors, ctx.authority, ctx.clock, prefixes, session)
    state = WorkflowsState(services)

    runner = web.AppRunner(http_app(callbacks, ctx.authority, state), access_log=None, handle_signals=False)
    try:
        await runner.setup()
        site = web.TCPSite(runner, http_host, int(http_port or 0))
        await site.start()
        bound_http = f"{http_host}:{runner.addresses[0][1]}"
        callbacks.base_url = f"http://{bound_http}"
        address = ctx.config.workflows
        server = await _grpc.start_server(address, handlers(state))
    except BaseException:
        await runner.cleanup()
        await session.close()
        raise
    host = address.rpartition(":")[0] or "127.0.0.1"
    log.info(
        "workflows: gRPC on %s:%s, callbacks and /admin/executions on http://%s",
        host,
        server.bound_port,
        bound_http,
    )
    return WorkflowsService(
        name="workflows",
        address=f"{host}:{server.bound_port}",
        http_address=bound_http,
        state=state,
        server=server,
        runner=runner,
        connectors=connectors,
        session=session,
    )
