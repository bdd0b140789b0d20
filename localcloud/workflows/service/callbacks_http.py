"""The Google HTTP API of callbacks, served on the engine's HTTP address:

- ``<ANY> /v1/projects/P/locations/L/workflows/W/executions/E/callbacks/C`` — ``callbacks.sendHttpCallback``
  (https://cloud.google.com/workflows/docs/reference/executions/rest/v1/projects.locations.workflows.executions.callbacks/sendHttpCallback):
  needs ``Authorization: Bearer <OAuth2 access token>``; answers 200 with an empty body once the payload is
  accepted.
- ``GET .../executions/E/callbacks`` — ``callbacks.list`` (method, waiters, availablePayloads), at most 100
  a page (also the default); the page token is the id of the last callback sent.

Errors use Google's JSON error body ``{"error": {"code", "message", "status"}}`` with the canonical HTTP
mapping (https://cloud.google.com/apis/design/errors): no or unknown token → 401 UNAUTHENTICATED, a token
without the cloud-platform scope → 403 PERMISSION_DENIED, unknown callback or finished execution → 404
NOT_FOUND, a ``pageSize`` that is not a whole number of zero or more → 400 INVALID_ARGUMENT. A request with
a method other than the callback's gets 405 (the real front end's answer is not documented).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from google.api_core import exceptions as gexc

from localcloud._paging import Paging
from localcloud.auth import TokenAuthority
from localcloud.rest import check_token, google_error
from localcloud.workflows.service.callbacks import Callback, CallbackRegistry, Delivery

# callbacks.list: "The default value is 100 and is also the maximum value."
LIST_PAGES = Paging(default_size=100, max_size=100, negative_size_error="pageSize must not be negative")
# Bodies above the Workflows variable-memory limit could never be stored in a variable anyway.
MAX_CALLBACK_BODY_BYTES = 512 * 1024
ROUTE = "/v1/projects/{project}/locations/{location}/workflows/{workflow}/executions/{execution}/callbacks"


def add_callback_routes(
    app: web.Application, registry: CallbackRegistry, authority: TokenAuthority, now: Callable[[], float]
) -> None:
    api = CallbacksHttpApi(registry, authority, now)
    app.router.add_route("GET", ROUTE, api.list_callbacks)
    app.router.add_route("*", ROUTE + "/{callback}", api.send_http_callback)


class CallbacksHttpApi:
    def __init__(
        self, registry: CallbackRegistry, authority: TokenAuthority, now: Callable[[], float]
    ) -> None:
        self.registry = registry
        self.authority = authority
        self.now = now

    async def send_http_callback(self, request: web.Request) -> web.StreamResponse:
        refused = self._authenticate(request)
        if refused is not None:
            return refused
        if request.content_length is not None and request.content_length > MAX_CALLBACK_BODY_BYTES:
            return google_error(413, "INVALID_ARGUMENT", "callback request body is too large")
        execution = execution_name(request)
        callback_id = request.match_info["callback"]
        callback = self.registry.get(execution, callback_id)
        if callback is None:
            return google_error(404, "NOT_FOUND", f"callback {execution}/callbacks/{callback_id} not found")
        if request.method != callback.method:
            response = google_error(
                405,
                "INVALID_ARGUMENT",
                f"this callback accepts {callback.method} requests, not {request.method}",
            )
            response.headers["Allow"] = callback.method
            return response
        payload = await request_payload(request, self.now())
        outcome = self.registry.deliver(execution, callback_id, request.method, payload)
        if outcome != Delivery.ACCEPTED:  # the execution ended while the body was being read
            return google_error(404, "NOT_FOUND", f"callback {execution}/callbacks/{callback_id} not found")
        return web.Response(status=200, content_type="application/json", text="{}")

    async def list_callbacks(self, request: web.Request) -> web.StreamResponse:
        refused = self._authenticate(request)
        if refused is not None:
            return refused
        execution = execution_name(request)
        callbacks = self.registry.list(execution)
        if callbacks is None:
            return google_error(404, "NOT_FOUND", f"execution {execution} not found or no longer running")
        try:
            size = int(request.query.get("pageSize", 0))
        except ValueError:
            return google_error(400, "INVALID_ARGUMENT", "pageSize must be an integer")
        try:
            page, token = LIST_PAGES.after_key_page(callbacks, size, request.query.get("pageToken", ""), _id)
        except gexc.InvalidArgument as error:
            return google_error(400, "INVALID_ARGUMENT", error.message)
        body: dict[str, Any] = {"callbacks": [c.describe() for c in page]}
        if token:
            body["nextPageToken"] = token
        return web.json_response(body)

    def _authenticate(self, request: web.Request) -> web.Response | None:
        return authenticate(request, self.authority)


def authenticate(request: web.Request, authority: TokenAuthority) -> web.Response | None:
    """None when ``request`` carries an access token with the cloud-platform scope, else the error
    answer (401 or 403) that the Executions API gives."""
    return check_token(request, authority)


def _id(callback: Callback) -> str:
    return callback.id


def execution_name(request: web.Request) -> str:
    """The execution named by the path's project, location, workflow and execution."""
    m = request.match_info
    return (
        f"projects/{m['project']}/locations/{m['location']}/workflows/{m['workflow']}"
        f"/executions/{m['execution']}"
    )


def received_time(epoch_seconds: float) -> str:
    # The real service renders Go's time.Time.String(), e.g. "2021-06-24 12:49:16.988072651 +0000 UTC"
    # (recalled from the callbacks page's sample output; not re-verified). We give microseconds.
    moment = datetime.datetime.fromtimestamp(epoch_seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f +0000 UTC")


async def request_payload(request: web.Request, now: float) -> dict[str, Any]:
    """What ``events.await_callback`` returns for ``request``: JSON bodies decoded, text bodies as strings,
    the query as a map of name → list of values; never the caller's Authorization header."""
    raw = await request.read()
    body: Any = None
    if raw:
        text: str | None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is None:
            body = raw
        elif request.content_type.endswith("json"):
            try:
                body = json.loads(text)
            except ValueError:
                body = text
        else:
            body = text
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        if name.lower() == "authorization":
            continue
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    query: dict[str, list[str]] = {}
    for name, value in request.query.items():
        query.setdefault(name, []).append(value)
    return {
        "http_request": {
            "body": body,
            "headers": headers,
            "method": request.method,
            "query": query,
            "url": request.rel_url.path_qs,
        },
        "received_time": received_time(now),
        "type": "HTTP",
    }
