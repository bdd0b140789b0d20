"""Serve the metadata emulator on ``ctx.config.metadata`` (``host:port``; port 0 picks a free one)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from localcloud._webapp import start_app
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


async def start(ctx: Context, identity: MetadataIdentity | None = None) -> MetadataService:
    identity = identity or MetadataIdentity(
        project_id=ctx.config.project_id,
        service_account_email=default_service_account(ctx.config.project_id),
    )
    runner, address = await start_app(create_app(identity, ctx.authority), ctx.config.metadata)
    return MetadataService(name="metadata", address=address, runner=runner, authority=ctx.authority)
