"""Starlette and FastAPI (a FastAPI app is a Starlette app)::

    app = fastapi.FastAPI()
    saga_participant.adapters.starlette.mount(app, participant, execute="/hotel/reserve", compensate="/hotel/release")

Handlers may be ``async def`` (they run on the event loop) or sync (a worker thread runs them); the
barrier's store runs in worker threads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from saga_participant.core import EFFECTS_PATH, HttpRequest, HttpResponse, Participant
from saga_participant.protocol import Action

METHODS = ["POST", "PUT", "PATCH", "DELETE"]


async def to_request(request: Request) -> HttpRequest:
    return HttpRequest(
        method=request.method,
        path=request.url.path,
        headers=request.headers,
        body=await request.body(),
        query=request.query_params,
    )


def to_response(response: HttpResponse) -> Response:
    return Response(response.body, status_code=response.status, headers=dict(response.headers))


async def handle(participant: Participant, request: Request, action: Action | None = None) -> Response:
    return to_response(await participant.handle_async(await to_request(request), action))


def endpoint(
    participant: Participant, action: Action | None = None
) -> Callable[[Request], Awaitable[Response]]:
    async def answer(request: Request) -> Response:
        return await handle(participant, request, action)

    return answer


def effects_endpoint(participant: Participant) -> Callable[[Request], Awaitable[Response]]:
    async def answer(request: Request) -> Response:
        return to_response(await participant.effects_async(await to_request(request)))

    return answer


def mount(app: Starlette, participant: Participant, *, execute: str, compensate: str) -> None:
    """Route ``execute`` and ``compensate`` (POST, PUT, PATCH, DELETE) and, when enabled, the effects."""
    app.add_route(execute, endpoint(participant, "execute"), methods=METHODS)
    app.add_route(compensate, endpoint(participant, "compensate"), methods=METHODS)
    if participant.effects_endpoint and not any(
        getattr(route, "path", None) == EFFECTS_PATH for route in app.router.routes
    ):
        app.add_route(EFFECTS_PATH, effects_endpoint(participant), methods=["GET"])
