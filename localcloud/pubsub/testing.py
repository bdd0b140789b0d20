"""Helpers for tests that drive the Pub/Sub emulator with the real clients: a running emulator with
``PUBSUB_EMULATOR_HOST`` clients, a recording HTTP endpoint for push tests, and ``eventually``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from localcloud.auth import TokenAuthority
from localcloud.clock import Clock, ManualClock, SystemClock
from localcloud.config import LocalCloudConfig
from localcloud.pubsub.server import PubSubService, start
from localcloud.runtime import Context

T = TypeVar("T")


async def eventually(
    check: Callable[[], T | Awaitable[T | None] | None], timeout: float = 10.0, message: str = "condition"
) -> T:
    """Poll ``check`` (sync or async) until it returns something truthy, with a real-time deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not reached within {timeout}s")
        await asyncio.sleep(0.01)


async def requests_from(queue: asyncio.Queue[Any]) -> AsyncIterator[Any]:
    """The request iterator of a raw bidirectional stream: what is put on ``queue``, until ``None``."""
    while True:
        item = await queue.get()
        if item is None:
            return
        yield item


async def start_local_pubsub(
    clock: Clock | None = None, authority: TokenAuthority | None = None
) -> PubSubService:
    config = LocalCloudConfig.from_env({"PUBSUB_EMULATOR_HOST": "127.0.0.1:0"})
    return await start(
        Context(config=config, clock=clock or SystemClock(), authority=authority or TokenAuthority())
    )


async def call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking client call off the loop the emulator runs on."""
    return await asyncio.to_thread(function, *args, **kwargs)


async def advance_until(
    clock: ManualClock, seconds: float, check: Callable[[], bool], step: float = 1.0
) -> None:
    """Advance ``clock`` in steps until ``check()`` holds or ``seconds`` have passed."""
    moved = 0.0
    while not check() and moved < seconds:
        await clock.advance(step)
        moved += step
        await asyncio.sleep(0.01)


@dataclass(frozen=True)
class PushedRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    client_port: int = 0  # the pushing side's port: one per connection


@dataclass
class PushEndpoint:
    """An aiohttp server on 127.0.0.1 that records requests and answers with the next of ``statuses``
    (then ``default_status``)."""

    clock: Clock = field(default_factory=SystemClock)
    statuses: list[int] = field(default_factory=list)
    default_status: int = 200
    received: list[PushedRequest] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> PushEndpoint:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        port = int(peer[1]) if peer else 0
        self.received.append(PushedRequest(request.path, dict(request.headers), body, self.clock.now(), port))
        status = self.statuses.pop(0) if self.statuses else self.default_status
        return web.Response(status=status)
