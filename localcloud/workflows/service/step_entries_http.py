"""The Executions REST API's step entries, served on the engine's HTTP address beside the callbacks (the
Python client has no step-entries methods, so there is no gRPC twin):

- ``GET /v1/projects/P/locations/L/workflows/W/executions/E/stepEntries`` — ``stepEntries.list``
  (https://cloud.google.com/workflows/docs/reference/executions/rest/v1/projects.locations.workflows.executions.stepEntries/list),
  query ``pageSize``, ``pageToken``, ``skip``, ``filter``, ``orderBy``, ``view`` (the snake_case
  spellings work too, as on Google's front end);
- ``GET .../executions/E/stepEntries/N`` — ``stepEntries.get``
  (https://cloud.google.com/workflows/docs/reference/executions/rest/v1/projects.locations.workflows.executions.stepEntries/get).

Authentication is the callbacks': an OAuth2 access token with the cloud-platform scope (401 without one,
403 without the scope). An unknown execution or entry is 404 NOT_FOUND; a bad ``pageSize``, ``skip``,
``pageToken``, ``filter``, ``orderBy`` or ``view`` is 400 INVALID_ARGUMENT; all with Google's JSON error
body. What the answers hold is in :mod:`~localcloud.workflows.service.step_entries`.
"""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web
from google.api_core import exceptions as gexc

from localcloud.auth import TokenAuthority
from localcloud.workflows.engine.history import StepHistory
from localcloud.workflows.service.callbacks_http import authenticate, execution_name, google_error
from localcloud.workflows.service.step_entries import get_entry, list_entries

ROUTE = "/v1/projects/{project}/locations/{location}/workflows/{workflow}/executions/{execution}/stepEntries"


class StepEntriesSource(Protocol):
    """Where the step entries are kept; the Workflows state provides it."""

    def step_history(self, execution: str) -> StepHistory | None:
        """The entries of the execution named ``execution``; None if there is no such execution."""
        ...


def add_step_entry_routes(app: web.Application, source: StepEntriesSource, authority: TokenAuthority) -> None:
    api = StepEntriesHttpApi(source, authority)
    app.router.add_route("GET", ROUTE, api.list_step_entries)
    app.router.add_route("GET", ROUTE + "/{entry}", api.get_step_entry)


class StepEntriesHttpApi:
    def __init__(self, source: StepEntriesSource, authority: TokenAuthority) -> None:
        self.source = source
        self.authority = authority

    def _history(self, request: web.Request) -> tuple[str, Any] | web.Response:
        """The execution the request names and its step history, or the error answer (401/403/404)."""
        refused = authenticate(request, self.authority)
        if refused is not None:
            return refused
        execution = execution_name(request)
        history = self.source.step_history(execution)
        if history is None:
            return google_error(404, "NOT_FOUND", f"Resource '{execution}' was not found")
        return execution, history

    async def list_step_entries(self, request: web.Request) -> web.StreamResponse:
        found = self._history(request)
        if isinstance(found, web.Response):
            return found
        execution, history = found
        query = request.query
        try:
            body = list_entries(
                execution,
                history,
                page_size=_integer(query, "pageSize", "page_size"),
                page_token=_text(query, "pageToken", "page_token"),
                skip=_integer(query, "skip", "skip"),
                filter_text=_text(query, "filter", "filter"),
                order_by=_text(query, "orderBy", "order_by"),
                view=_text(query, "view", "view"),
            )
        except gexc.InvalidArgument as error:
            return google_error(400, "INVALID_ARGUMENT", error.message)
        return web.json_response(body)

    async def get_step_entry(self, request: web.Request) -> web.StreamResponse:
        found = self._history(request)
        if isinstance(found, web.Response):
            return found
        execution, history = found
        try:
            body = get_entry(
                execution, history, request.match_info["entry"], view=request.query.get("view", "")
            )
        except gexc.InvalidArgument as error:
            return google_error(400, "INVALID_ARGUMENT", error.message)
        except gexc.NotFound as error:
            return google_error(404, "NOT_FOUND", error.message)
        return web.json_response(body)


def _text(query: Any, camel: str, snake: str) -> str:
    return str(query.get(camel, query.get(snake, "")))


def _integer(query: Any, camel: str, snake: str) -> int:
    text = _text(query, camel, snake)
    try:
        return int(text) if text else 0
    except ValueError:
        raise gexc.InvalidArgument(f"{camel} must be an integer, got {text!r}") from None
