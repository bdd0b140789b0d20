from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from examples.participants.server import RunningParticipant, start_participant
from localcloud.auth import TokenAuthority
from localcloud.clock import ManualClock

API_KEY = "test-payment-key-5f1d"


@pytest.fixture(scope="module")
def authority() -> TokenAuthority:
    return TokenAuthority()


@pytest.fixture(scope="module")
def past_authority() -> TokenAuthority:
    """Its tokens expired an hour before the tests run; its certificates are served too."""
    return TokenAuthority(clock=ManualClock(start=time.time() - 2 * 3600))


@pytest.fixture
async def certs_url(authority: TokenAuthority, past_authority: TokenAuthority) -> AsyncIterator[str]:
    async def certs(request: web.Request) -> web.Response:
        return web.json_response({**authority.certificates(), **past_authority.certificates()})

    app = web.Application()
    app.router.add_get("/oauth2/v1/certs", certs)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/oauth2/v1/certs"
    await runner.cleanup()


StartParticipant = Callable[..., Awaitable[RunningParticipant]]


@pytest.fixture(params=["aiohttp", "fastapi"])
def framework(request: pytest.FixtureRequest) -> str:
    """The web layer the participants under test run on (functions-framework runs as a process of its
    own: tests/e2e/test_e2e_participant_frameworks.py drives it)."""
    return str(request.param)


@pytest.fixture
async def start(certs_url: str, framework: str) -> AsyncIterator[StartParticipant]:
    started: list[RunningParticipant] = []

    async def _start(service: str, **options: Any) -> RunningParticipant:
        options.setdefault("certs_url", certs_url)
        options.setdefault("framework", framework)
        if service == "payment":
            options.setdefault("api_key", API_KEY)
        running = await start_participant(service, **options)
        started.append(running)
        return running

    yield _start
    for running in started:
        await running.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client
