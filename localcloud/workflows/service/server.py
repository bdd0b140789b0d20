"""Serve the Workflows engine: the Workflows, Operations and Executions gRPC APIs on
``ctx.config.workflows`` and the callback endpoints, step entries, an index and admin pages over HTTP on
``ctx.config.workflows_http`` (port 0 picks a free port for either; callback URLs use the bound one)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import grpc
from aiohttp import web

from localcloud import _grpc
from localcloud.auth import TokenAuthority
from localcloud.quotas import Quotas
from localcloud.runtime import Context
from localcloud.workflows.engine.stdlib.http import new_session
from localcloud.workflows.service.admin_http import AdminSource, add_admin_routes
from localcloud.workflows.service.callbacks import CallbackRegistry
from localcloud.workflows.service.callbacks_http import MAX_CALLBACK_BODY_BYTES, add_callback_routes
from localcloud.workflows.service.connectors import Connectors
from localcloud.workflows.service.executions_api import EXECUTIONS_REQUEST_TYPES, ExecutionsApi
from localcloud.workflows.service.service_host import HostServices, internal_prefixes_from_env
from localcloud.workflows.service.state import WorkflowsState
from localcloud.workflows.service.step_entries_http import StepEntriesSource, add_step_entry_routes
from localcloud.workflows.service.workflows_api import (
    OPERATIONS_REQUEST_TYPES,
    WORKFLOWS_REQUEST_TYPES,
    OperationsApi,
    WorkflowsApi,
)

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


def handlers(state: WorkflowsState, quotas: Quotas | None = None) -> list[grpc.GenericRpcHandler]:
    return [
        _table(WORKFLOWS_SERVICE, WorkflowsApi(state), WORKFLOWS_REQUEST_TYPES),
        _table(OPERATIONS_SERVICE, OperationsApi(state), OPERATIONS_REQUEST_TYPES),
        _table(EXECUTIONS_SERVICE, ExecutionsApi(state, quotas), EXECUTIONS_REQUEST_TYPES),
    ]


def _table(service: str, api: object, request_types: dict[str, Any]) -> grpc.GenericRpcHandler:
    return _grpc.service(
        service,
        {n: _grpc.unary(getattr(api, n), t, method=f"{service}/{n}") for n, t in request_types.items()},
    )


def http_app(
    registry: CallbackRegistry,
    authority: TokenAuthority,
    admin: AdminSource,
    *,
    now: Callable[[], float] | None = None,
    step_entries: StepEntriesSource | None = None,
    grpc_address: Callable[[], str | None] = lambda: None,
) -> web.Application:
    """The callbacks and step-entries APIs, the index and the admin pages, on one address."""
    app = web.Application(client_max_size=MAX_CALLBACK_BODY_BYTES + 1024)
    add_callback_routes(app, registry, authority, now or registry.clock.now)
    if step_entries is not None:
        add_step_entry_routes(app, step_entries, authority)
    add_admin_routes(app, admin, grpc_address)
    return app


def add_quota_route(app: web.Application, quotas: Quotas) -> None:
    """``GET /admin/quotas`` (not a Google API): the limits in force (``LOCALCLOUD_QUOTAS``) and, by quota
    and key, the calls admitted and refused since start, for every emulator of this process."""

    async def report(request: web.Request) -> web.StreamResponse:
        return web.json_response({"limits": quotas.describe(), "usage": quotas.usage()})

    app.router.add_route("GET", "/admin/quotas", report)


async def start(ctx: Context, *, internal_url_prefixes: tuple[str, ...] | None = None) -> WorkflowsService:
    """``internal_url_prefixes`` defaults to ``LOCALCLOUD_INTERNAL_URL_PREFIXES`` from the environment."""
    http_host, _, http_port = ctx.config.workflows_http.rpartition(":")
    http_host = http_host or "127.0.0.1"
    callbacks = CallbackRegistry(clock=ctx.clock)
    connectors = Connectors(ctx.config, ctx.clock)
    prefixes = internal_prefixes_from_env() if internal_url_prefixes is None else internal_url_prefixes
    session = new_session()
    services = HostServices(callbacks, connectors, ctx.authority, ctx.clock, prefixes, session)
    state = WorkflowsState(services)

    grpc_bound: list[str] = []  # filled once the gRPC server is up
    app = http_app(
        callbacks,
        ctx.authority,
        state,
        step_entries=state,
        grpc_address=lambda: grpc_bound[0] if grpc_bound else None,
    )
    add_quota_route(app, ctx.quotas)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    try:
        await runner.setup()
        site = web.TCPSite(runner, http_host, int(http_port or 0))
        await site.start()
        bound_http = f"{http_host}:{runner.addresses[0][1]}"
        callbacks.base_url = f"http://{bound_http}"
        address = ctx.config.workflows
        server = await _grpc.start_server(address, handlers(state, ctx.quotas))
    except BaseException:
        await runner.cleanup()
        await session.close()
        raise
    host = address.rpartition(":")[0] or "127.0.0.1"
    grpc_bound.append(f"{host}:{server.bound_port}")
    connectors.bind_address("workflows", grpc_bound[0])  # the Executions and Workflows connectors
    log.info(
        "workflows: gRPC on %s:%s, callbacks, step entries and /admin/executions on http://%s",
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
