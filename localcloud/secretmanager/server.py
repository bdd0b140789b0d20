"""Serve the Secret Manager emulator over gRPC on ``ctx.config.secretmanager`` (port 0 picks a free one), and
the same methods over REST on ``ctx.config.rest_address("secretmanager")`` (see ``localcloud.rest_server``)."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from localcloud import _grpc
from localcloud._project import ProjectNumbers, accept_numbers
from localcloud.rest_server import SECRET_MANAGER_TRANSPORTS, RestServer, ServedTwice
from localcloud.runtime import Context
from localcloud.secretmanager.api import REQUEST_TYPES, SecretManagerApi
from localcloud.secretmanager.state import SecretStore

SERVICE_NAME = "google.cloud.secretmanager.v1.SecretManagerService"


@dataclass
class SecretManagerService(ServedTwice):
    name: str
    address: str
    store: SecretStore
    server: grpc.aio.Server
    rest: RestServer | None = None


def handlers(api: SecretManagerApi) -> list[grpc.GenericRpcHandler]:
    methods = {
        name: _grpc.unary(getattr(api, name), request_type, method=f"{SERVICE_NAME}/{name}")
        for name, request_type in REQUEST_TYPES.items()
    }
    return [_grpc.service(SERVICE_NAME, methods)]


async def start(ctx: Context, store: SecretStore | None = None) -> SecretManagerService:
    store = store or SecretStore(ctx.clock)
    address = ctx.config.secretmanager
    tables = handlers(SecretManagerApi(store))
    # A project number in a name is the project (Google accepts either); the answer to a request that
    # named it by number names it by number, as Secret Manager answers (see localcloud.secretmanager.state).
    accept_numbers(tables, ProjectNumbers(ctx.config.project_id), answer_numbers=True)
    server = await _grpc.start_server(address, tables)
    host = address.rpartition(":")[0] or "127.0.0.1"
    service = SecretManagerService(
        name="secretmanager",
        address=f"{host}:{server.bound_port}",
        store=store,
        server=server,
    )
    await service.open_rest(ctx.config.rest_address("secretmanager"), tables, SECRET_MANAGER_TRANSPORTS)
    return service
