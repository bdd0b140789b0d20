"""Flask and functions-framework.

Flask::

    app = flask.Flask(__name__)
    saga_participant.adapters.flask.mount(app, participant, execute="/flight/book", compensate="/flight/cancel")

functions-framework (one function, one URL; ``X-Saga-Action`` tells execute from compensate, and
``GET /_saga/effects`` is served by the same function when enabled)::

    @functions_framework.http
    def flight(request):
        return saga_participant.adapters.flask.dispatch(participant, request)

Handlers must be sync (a Flask worker thread runs them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

import flask

from saga_participant.core import EFFECTS_PATH, HttpRequest, HttpResponse, Participant
from saga_participant.protocol import Action

METHODS = ("POST", "PUT", "PATCH", "DELETE")


class _Headers(Mapping[str, str]):
    """A request's headers, looked up case-insensitively as ``HttpRequest`` needs (werkzeug spells the
    names it reads from the WSGI environment its own way: ``traceparent`` arrives as ``Traceparent``)."""

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self._values = {name.lower(): value for name, value in items}

    def __getitem__(self, name: str) -> str:
        return self._values[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def to_request(request: flask.Request) -> HttpRequest:
    return HttpRequest(
        method=request.method,
        path=request.path,
        headers=_Headers(request.headers.items()),
        body=request.get_data(cache=True),
        query=request.args,
    )


def to_response(response: HttpResponse) -> flask.Response:
    return flask.Response(response.body, status=response.status, headers=dict(response.headers))


def handle(participant: Participant, request: flask.Request, action: Action | None = None) -> flask.Response:
    return to_response(participant.handle(to_request(request), action))


def dispatch(participant: Participant, request: flask.Request) -> flask.Response:
    """One entry point for a whole participant: the effects endpoint on ``GET``, else a call."""
    if request.method == "GET" and request.path.rstrip("/").endswith(EFFECTS_PATH):
        return to_response(participant.effects(to_request(request)))
    return handle(participant, request)


def mount(app: flask.Flask, participant: Participant, *, execute: str, compensate: str) -> None:
    """Route ``execute`` and ``compensate`` (POST, PUT, PATCH, DELETE) and, when enabled, the effects."""

    def view(action: Action) -> Callable[[], flask.Response]:
        def answer() -> flask.Response:
            return handle(participant, flask.request, action)

        return answer

    name = participant.barrier.scope
    app.add_url_rule(execute, f"saga_{name}_execute", view("execute"), methods=list(METHODS))
    app.add_url_rule(compensate, f"saga_{name}_compensate", view("compensate"), methods=list(METHODS))
    if participant.effects_endpoint and EFFECTS_PATH not in {rule.rule for rule in app.url_map.iter_rules()}:
        app.add_url_rule(
            EFFECTS_PATH,
            "saga_effects",
            lambda: to_response(participant.effects(to_request(flask.request))),
            methods=["GET"],
        )
