"""Serve the Resource Manager emulator (tags) over gRPC on ``ctx.config.resourcemanager`` (port 0 picks a free
one), and the same methods over REST on ``ctx.config.rest_address("resourcemanager")`` (see
``localcloud.rest_server``), as ``cloudresourcemanager.googleapis.com`` serves them (``/v3/tagKeys``, ...)."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from localcloud import _grpc
from localcloud._project import ProjectNumbers, accept_numbers
from localcloud.resourcemanager.api import (
    REQUEST_TYPES,
    Operations,
    ResourceCheck,
    TagBindingsApi,
    TagKeysApi,
    TagValuesApi,
    secret_manager_check,
)
from localcloud.resourcemanager.state import TagStore
from localcloud.rest_server import RestServer, ServedTwice
from localcloud.runtime import Context

# The GAPIC transports whose HTTP rules the REST surface serves (each also carries GetOperation's).
RESOURCE_MANAGER_TRANSPORTS = tuple(
    f"google.cloud.resourcemanager_v3.services.{service}.transports"
    for service in ("tag_keys", "tag_values", "tag_bindings")
)


@dataclass
class ResourceManagerService(ServedTwice):
    name: str
    address: str
    store: TagStore
    server: grpc.aio.Server
    rest: RestServer | None = None


def handlers(store: TagStore, exists: ResourceCheck | None = None) -> list[grpc.GenericRpcHandler]:
    operations = Operations()
    apis: dict[str, object] = {
        "google.cloud.resourcemanager.v3.TagKeys": TagKeysApi(store, operations),
        "google.cloud.resourcemanager.v3.TagValues": TagValuesApi(store, operations, exists),
        "google.cloud.resourcemanager.v3.TagBindings": TagBindingsApi(store, operations),
        "google.longrunning.Operations": operations,
    }
    tables = []
    for service_name, request_types in REQUEST_TYPES.items():
        api = apis[service_name]
        methods = {
            name: _grpc.unary(getattr(api, name), request_type, method=f"{service_name}/{name}")
            for name, request_type in request_types.items()
        }
        tables.append(_grpc.service(service_name, methods))
    return tables


async def start(
    ctx: Context, store: TagStore | None = None, exists: ResourceCheck | None = None
) -> ResourceManagerService:
    """``exists`` tells whether a bound resource is still there (default: Secret Manager's resources, asked
    of the Secret Manager emulator at ``ctx.config.secretmanager``)."""
    numbers = ProjectNumbers(ctx.config.project_id)
    store = store or TagStore(ctx.clock, numbers)
    address = ctx.config.resourcemanager
    tables = handlers(store, exists or secret_manager_check(ctx.config.secretmanager))
    # A tag key's parent may name its project by number (Google accepts either); it is read as the id.
    accept_numbers(tables, numbers)
    server = await _grpc.start_server(address, tables)
    host = address.rpartition(":")[0] or "127.0.0.1"
    service = ResourceManagerService(
        name="resourcemanager", address=f"{host}:{server.bound_port}", store=store, server=server
    )
    await service.open_rest(ctx.config.rest_address("resourcemanager"), tables, RESOURCE_MANAGER_TRANSPORTS)
    return service
