"""aiohttp::

    app = aiohttp.web.Application()
    saga_participant.adapters.aiohttp.mount(app, participant, execute="/payment/charge", compensate="/payment/refund")

Handlers may be ``async def`` (they run on the event loop) or sync (a worker thread runs them); the
barrier's store runs in worker threads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from saga_participant.core import EFFECTS_PATH, HttpRequest, HttpResponse, Participant
from saga_participant.protocol import Action

METHODS = ("POST", "PUT", "PATCH", "DELETE")


async def to_request(request: web.Request) -> HttpRequest:
    return HttpRequest(
        method=request.method,
        path=request.path,
        headers=request.headers,
        body=await request.read(),
        query=request.query,
    )


def to_response(response: HttpResponse) -> web.Response:
    return web.Response(body=response.body, status=response.status, headers=dict(response.headers))


async def handle(
    participant: Participant, request: web.Request, action: Action | None = None
) -> web.Response:
    return to_response(await participant.handle_async(await to_request(request), action))


def handler(
    participant: Participant, action: Action | None = None
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def answer(request: web.Request) -> web.Response:
        return await handle(participant, request, action)

    return answer


def mount(app: web.Application, participant: Participant, *, execute: str, compensate: str) -> None:
    """Route ``execute`` and ``compensate`` (POST, PUT, PATCH, DELETE) and, when enabled, the effects."""
    for method in METHODS:
        app.router.add_route(method, execute, handler(participant, "execute"))
        app.router.add_route(method, compensate, handler(participant, "compensate"))
    if participant.effects_endpoint and not any(
        resource.canonical == EFFECTS_PATH for resource in app.router.resources()
    ):

        async def effects(request: web.Request) -> web.Response:
            return to_response(await participant.effects_async(await to_request(request)))

        app.router.add_get(EFFECTS_PATH, effects)
