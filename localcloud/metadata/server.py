"""Serve the metadata emulator on ``ctx.config.metadata`` (``host:port``; port 0 picks a free one)."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from aiohttp import web

from localcloud.auth import TokenAuthority
from localcloud.metadata.app import MetadataIdentity, create_app, default_service_account
from localcloud.runtime import Context


@dataclass
class MetadataService:
    name: str
    address: str
    runner: web.AppRunner
    authority: TokenAuthority

    async def stop(self) -> None:
        await self.runner.cleanup()


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return (host or "127.0.0.1").strip("[]"), int(port)


async def start_app(app: web.Application, address: str) -> tuple[web.AppRunner, str]:
    """Bind an aiohttp app on ``host:port``; returns the runner and the address actually bound."""
    host, port = split_address(address)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.setblocking(False)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner, f"{host}:{sock.getsockname()[1]}"


async def start(ctx: Context, identity: MetadataIdentity | None = None) -> MetadataService:
    identity = identity or MetadataIdentity(
        project_id=ctx.config.project_id,
        service_account_email=default_service_account(ctx.config.project_id),
    )
    runner, address = await start_app(create_app(identity, ctx.authority), ctx.config.metadata)
    return MetadataService(name="metadata", address=address, runner=runner, authority=ctx.authority)
