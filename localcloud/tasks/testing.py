"""Helpers for tests of code that receives Cloud Tasks: a recording HTTP target and ``eventually``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from localcloud.clock import Clock, ManualClock, SystemClock
from localcloud.tasks.dispatcher import Dispatcher


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # the injected clock's time when the request arrived
    client_port: int = 0  # the caller's end of the connection: equal ports, one kept-alive connection


@dataclass
class RecordingTarget:
    """An aiohttp server on 127.0.0.1 that records every request and answers with the next status of
    ``statuses`` (then ``default_status``); while ``hold`` is set it does not answer at all."""

    clock: Clock = field(default_factory=SystemClock)
    statuses: list[int] = field(default_factory=list)
    default_status: int = 200
    extra_headers: dict[str, str] = field(default_factory=dict)
    hold: bool = False
    received: list[ReceivedRequest] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    url: str = ""
    _release: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None

    async def start(self) -> RecordingTarget:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def release(self) -> None:
        """Let every held request answer."""
        self.hold = False
        self._release.set()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        self.received.append(
            ReceivedRequest(
                request.method,
                request.path_qs,
                dict(request.headers),
                body,
                self.clock.now(),
                int(peer[1]) if peer else 0,
            )
        )
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.hold:
                await self._release.wait()
            status = self.statuses.pop(0) if self.statuses else self.default_status
            return web.Response(
                status=status, text="ok" if status < 300 else "failed", headers=self.extra_headers
            )
        finally:
            self.in_flight -= 1


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``predicate`` (real time) until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.002)


def settled(dispatcher: Dispatcher, clock: ManualClock) -> bool:
    """No attempt in flight and the dispatcher asleep on ``clock`` (or waiting for an event)."""
    if dispatcher.attempts_in_flight or not dispatcher.idle:
        return False
    if dispatcher.sleeping_until is None:
        return True
    deadline = clock.next_deadline()
    return deadline is not None and abs(deadline - dispatcher.sleeping_until) < 1e-6


async def settle(dispatcher: Dispatcher, clock: ManualClock) -> None:
    await eventually(lambda: settled(dispatcher, clock), what="the dispatcher to settle")


async def advance_to_next_due(dispatcher: Dispatcher, clock: ManualClock) -> float:
    """Let the dispatcher settle, then move ``clock`` exactly to its next wake-up; returns the step."""
    await settle(dispatcher, clock)
    if dispatcher.sleeping_until is None:
        raise AssertionError("the dispatcher has nothing scheduled")
    step = dispatcher.sleeping_until - clock.now()
    await clock.advance(step)
    return step
