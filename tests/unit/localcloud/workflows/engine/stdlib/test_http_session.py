"""http.* through a session the host shares between calls (the Executions service offers one): pooled
keep-alive connections, yet no cookies carried from one call to the next; and the timeout on the system
clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

from localcloud.clock import SystemClock
from localcloud.workflows.engine.interpreter import run_execution
from localcloud.workflows.engine.loader import load_workflow
from localcloud.workflows.engine.standalone import StandaloneHost
from localcloud.workflows.engine.stdlib.http import new_session
from localcloud.workflows.lang.errors import WorkflowError

TWO_CALLS = """\
main:
  params: [args]
  steps:
    - first:
        call: http.post
        args:
          url: ${args.url + "/one"}
          body: {"n": 1}
        result: one
    - second:
        call: http.get
        args:
          url: ${args.url + "/two"}
        result: two
    - done:
        return: ${[one.body, two.body]}
"""


class SharingHost(StandaloneHost):
    def __init__(self, session: Any) -> None:
        super().__init__(clock=SystemClock())
        self.http_session = session


async def test_calls_share_connections_but_never_cookies(
    http_server: Callable[[web.Application], Any],
) -> None:
    peers: list[Any] = []
    cookies: list[str | None] = []

    async def handle(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        cookies.append(request.headers.get("Cookie"))
        response = web.json_response({"path": request.path})
        response.set_cookie("session", "secret")
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    # by name: cookie jars ignore cookies from bare IP addresses
    url = (await http_server(app)).replace("127.0.0.1", "localhost")
    session = new_session()
    try:
        result = await run_execution(load_workflow(TWO_CALLS), {"url": url}, SharingHost(session))
        again = await run_execution(load_workflow(TWO_CALLS), {"url": url}, SharingHost(session))
    finally:
        await session.close()
    assert result == again == [{"path": "/one"}, {"path": "/two"}]
    assert cookies == [None, None, None, None]
    assert len(set(peers)) == 1  # one keep-alive connection served all four calls


SLOW = """\
main:
  params: [args]
  steps:
    - call_it:
        call: http.get
        args:
          url: ${args.url}
          timeout: 0.2
"""


async def test_timeout_on_the_system_clock_is_a_timeout_error(
    http_server: Callable[[web.Application], Any],
) -> None:
    release = asyncio.Event()

    async def stall(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/", stall)
    url = await http_server(app)
    session = new_session()
    try:
        started = asyncio.get_running_loop().time()
        try:
            await run_execution(load_workflow(SLOW), {"url": url + "/"}, SharingHost(session))
        except WorkflowError as error:
            failure = error
        else:
            raise AssertionError("the call did not time out")
        elapsed = asyncio.get_running_loop().time() - started
    finally:
        release.set()
        await session.close()
    assert failure.tags == ["TimeoutError"]
    assert 0.15 < elapsed < 5
