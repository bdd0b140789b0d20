"""Serve the Secret Manager emulator over gRPC on ``ctx.config.secretmanager`` (port 0 picks a free one)."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from localcloud import _grpc
from localcloud.runtime import Context
from localcloud.secretmanager.api import REQUEST_TYPES, SecretManagerApi
from localcloud.secretmanager.state import SecretStore

SERVICE_NAME = "google.cloud.secretmanager.v1.SecretManagerService"


@dataclass
class SecretManagerService:
    name: str
    address: str
    store: SecretStore
    server: grpc.aio.Server

    async def stop(self) -> None:
        await self.server.stop(grace=0.5)


def handlers(api: SecretManagerApi) -> list[grpc.GenericRpcHandler]:
    methods = {
        name: _grpc.unary(getattr(api, name), request_type, method=f"{SERVICE_NAME}/{name}")
        for name, request_type in REQUEST_TYPES.items()
    }
    return [_grpc.service(SERVICE_NAME, methods)]


async def start(ctx: Context, store: SecretStore | None = None) -> SecretManagerService:
    store = store or SecretStore(ctx.clock)
    address = ctx.config.secretmanager
    server = await _grpc.start_server(address, handlers(SecretManagerApi(store)))
    host = address.rpartition(":")[0] or "127.0.0.1"
    return SecretManagerService(
        name="secretmanager",
        address=f"{host}:{server.bound_port}",
        store=store,
        server=server,
    )
