"""Serve the Cloud Logging emulator's REST API on ``ctx.config.logging`` (port 0 picks a free one).

- ``POST /v2/entries:write`` (https://cloud.google.com/logging/docs/reference/v2/rest/v2/entries/write)
  answers ``{}``; the caller needs ``logging.logEntries.create`` (roles/logging.logWriter).
- ``POST /v2/entries:list`` (https://cloud.google.com/logging/docs/reference/v2/rest/v2/entries/list)
  answers ``{"entries": [...], "nextPageToken": ...}``; the caller needs ``logging.logEntries.list``
  (roles/logging.viewer).

Both need ``Authorization: Bearer <OAuth2 access token>`` minted by the local cloud's token authority:
none or an unknown one is 401 UNAUTHENTICATED, a token without a scope that allows the method is 403
PERMISSION_DENIED (https://cloud.google.com/logging/docs/access-control, "Access scopes"). Errors are
Google's JSON error body ``{"error": {"code", "message", "status", "details"?}}``
(https://cloud.google.com/apis/design/errors#http_mapping). A body that is not a JSON object is 400
INVALID_ARGUMENT; one over ``MAX_REQUEST_BYTES`` (the 10 MB ``entries.write`` request limit) is 413.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from google.api_core import exceptions as gexc

from localcloud._webapp import start_app
from localcloud.auth import TokenAuthority
from localcloud.logging.api import LoggingApi
from localcloud.logging.state import LogStore
from localcloud.rest import check_token, google_error
from localcloud.runtime import Context

MAX_REQUEST_BYTES = 10 * 1024 * 1024
_CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
_LOGGING = "https://www.googleapis.com/auth/logging"
WRITE_SCOPES = frozenset({_CLOUD_PLATFORM, f"{_LOGGING}.write", f"{_LOGGING}.admin"})
READ_SCOPES = frozenset(
    {_CLOUD_PLATFORM, f"{_CLOUD_PLATFORM}.read-only", f"{_LOGGING}.read", f"{_LOGGING}.admin"}
)


@dataclass
class LoggingService:
    name: str
    address: str
    store: LogStore
    runner: web.AppRunner

    async def stop(self) -> None:
        await self.runner.cleanup()


def create_app(api: LoggingApi, authority: TokenAuthority) -> web.Application:
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    app.router.add_post("/v2/entries:write", _handler(api.WriteLogEntries, authority, WRITE_SCOPES))
    app.router.add_post("/v2/entries:list", _handler(api.ListLogEntries, authority, READ_SCOPES))
    return app


def _handler(
    method: Callable[[dict[str, Any]], dict[str, Any]], authority: TokenAuthority, scopes: frozenset[str]
) -> Callable[[web.Request], Any]:
    async def handle(request: web.Request) -> web.StreamResponse:
        refused = check_token(request, authority, scopes)
        if refused is not None:
            return refused
        try:
            body = json.loads(await request.read() or b"{}")
        except web.HTTPRequestEntityTooLarge:
            return google_error(
                413, "INVALID_ARGUMENT", f"the request is larger than {MAX_REQUEST_BYTES} bytes"
            )
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            return google_error(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. {error}")
        if not isinstance(body, dict):
            return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received. Expected an object.")
        try:
            return web.json_response(method(body))
        except gexc.GoogleAPICallError as error:
            status = error.grpc_status_code.name if error.grpc_status_code else "UNKNOWN"
            return google_error(error.code or 500, status, error.message, list(error.details or []))

    return handle


async def start(ctx: Context, store: LogStore | None = None) -> LoggingService:
    store = store or LogStore(ctx.clock)
    runner, address = await start_app(create_app(LoggingApi(store), ctx.authority), ctx.config.logging)
    return LoggingService(name="logging", address=address, store=store, runner=runner)
