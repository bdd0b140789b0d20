"""Serving the emulators' HTTP surfaces with aiohttp: binding an app, and what the emulators of Google's plain
JSON APIs (Cloud Storage, BigQuery) share — a JSON object as a request's body, each call counted under its
API method (``GET /admin/calls``), and an API error answered in the API's own error shape."""

from __future__ import annotations

import json
import logging
import socket
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiohttp import web
from google.api_core import exceptions as gexc

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ErrorShape = Callable[[gexc.GoogleAPICallError], web.Response]


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return (host or "127.0.0.1").strip("[]"), int(port or 0)


async def start_app(app: web.Application, address: str) -> tuple[web.AppRunner, str]:
    """Bind an aiohttp app on ``host:port`` (port 0: a free one); returns the runner and the address
    actually bound."""
    host, port = split_address(address)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.setblocking(False)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner, f"{host}:{sock.getsockname()[1]}"


S = TypeVar("S")


@dataclass
class JsonApiService(Generic[S]):
    """One running JSON API emulator (its ``state`` is the emulator's own)."""

    name: str
    address: str
    state: S
    runner: web.AppRunner

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    async def stop(self) -> None:
        await self.runner.cleanup()


def counted(calls: Counter[str], method: str, handler: Handler, errors: ErrorShape) -> Handler:
    """Count the call under ``method``, and answer an API error in the shape ``errors`` gives."""
    log = logging.getLogger(f"localcloud.{method.split('.')[0]}")

    async def handle(request: web.Request) -> web.StreamResponse:
        calls[method] += 1
        try:
            return await handler(request)
        except gexc.GoogleAPICallError as error:
            log.debug("%s %s -> %s %s", request.method, request.path, error.code, error.message)
            return errors(error)

    return handle


Routes = tuple[tuple[str, str, str, str], ...]


def add_routes(
    app: web.Application, api: Any, routes: Routes, calls: Counter[str], errors: ErrorShape
) -> None:
    """``routes``: ``(HTTP method, path, API method id, handler name of api)`` each, counted in ``calls``;
    ``GET /admin/calls`` (not a Google API) answers the counts."""

    async def admin_calls(request: web.Request) -> web.StreamResponse:
        return web.json_response({"calls": dict(sorted(calls.items()))})

    app.router.add_route("GET", "/admin/calls", admin_calls)
    for method, path, api_method, handler_name in routes:
        app.router.add_route(method, path, counted(calls, api_method, getattr(api, handler_name), errors))


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's body as a JSON object (none: an empty one); anything else is 400 "Parse Error"."""
    raw = await request.read()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise gexc.BadRequest("Parse Error: the request body is not JSON") from None
    if not isinstance(body, dict):
        raise gexc.BadRequest("Parse Error: the request body must be a JSON object")
    return body
