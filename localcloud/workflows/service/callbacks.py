"""HTTP callback endpoints of running executions, plus the engine's admin pages.

``CallbackRegistry`` holds, per execution, the callbacks made by ``events.create_callback_endpoint``: the
HTTP method each accepts, the payloads received and not yet consumed (a FIFO: a request that arrives
before anyone waits is kept, as the real ``availablePayloads`` are) and the step waiting on it. A parked
``await_callback`` costs one future and nothing else, so tens of thousands of executions can wait at once.

``http_app`` serves, on the engine's HTTP address:

- ``<ANY> /v1/projects/P/locations/L/workflows/W/executions/E/callbacks/C`` — ``callbacks.sendHttpCallback``
  (https://cloud.google.com/workflows/docs/reference/executions/rest/v1/projects.locations.workflows.executions.callbacks/sendHttpCallback):
  needs ``Authorization: Bearer <OAuth2 access token>``; answers 200 with an empty body once the payload is
  accepted.
- ``GET .../executions/E/callbacks`` — ``callbacks.list`` (method, waiters, availablePayloads).
- ``GET /admin/executions`` and ``GET /admin/executions/<id>`` — state and billable steps (not a Google API).

Errors use Google's JSON error body ``{"error": {"code", "message", "status"}}`` with the canonical HTTP
mapping (https://cloud.google.com/apis/design/errors): no or unknown token → 401 UNAUTHENTICATED, a token
without the cloud-platform scope → 403 PERMISSION_DENIED, unknown callback or finished execution → 404
NOT_FOUND. A request with a method other than the callback's gets 405 (the real front end's answer is not
documented).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from localcloud.auth import TokenAuthority
from localcloud.clock import Clock, SystemClock
from localcloud.workflows.lang.errors import WorkflowError

CALLBACK_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
# callbacks.list: "The default value is 100 and is also the maximum value."
LIST_PAGE_SIZE = 100
# Bodies above the Workflows variable-memory limit could never be stored in a variable anyway.
MAX_CALLBACK_BODY_BYTES = 512 * 1024


class Callback:
    __slots__ = ("execution", "id", "method", "payloads", "url", "waiter")

    def __init__(self, execution: str, callback_id: str, method: str, url: str) -> None:
        self.execution = execution
        self.id = callback_id
        self.method = method
        self.url = url
        self.payloads: deque[dict[str, Any]] = deque()
        self.waiter: asyncio.Future[dict[str, Any]] | None = None

    @property
    def name(self) -> str:
        return f"{self.execution}/callbacks/{self.id}"

    @property
    def waiters(self) -> int:
        return 1 if self.waiter is not None and not self.waiter.done() else 0

    def describe(self) -> dict[str, Any]:
        """The REST ``Callback`` resource."""
        return {
            "name": self.name,
            "method": self.method,
            "availablePayloads": [json.dumps(p, separators=(",", ":")) for p in self.payloads],
            "waiters": str(self.waiters),  # int64 → JSON string, as in every Google REST API
        }


class Delivery:
    ACCEPTED = "accepted"
    NOT_FOUND = "not_found"
    WRONG_METHOD = "wrong_method"


@dataclass
class CallbackRegistry:
    """Callbacks of the executions that are still running. Use from the event loop's thread."""

    clock: Clock = field(default_factory=SystemClock)
    base_url: str = "http://127.0.0.1:8787"
    _executions: dict[str, dict[str, Callback]] = field(default_factory=dict)

    def open_execution(self, execution: str) -> None:
        self._executions.setdefault(execution, {})

    def close_execution(self, execution: str) -> None:
        """Forget the execution's callbacks; later requests to them get 404."""
        for callback in self._executions.pop(execution, {}).values():
            if callback.waiter is not None and not callback.waiter.done():
                callback.waiter.cancel()
            callback.payloads.clear()

    def create(self, execution: str, method: str = "POST") -> Callback:
        callbacks = self._executions.get(execution)
        if callbacks is None:
            raise KeyError(execution)
        callback_id = uuid.uuid4().hex
        callback = Callback(
            execution, callback_id, method, f"{self.base_url}/v1/{execution}/callbacks/{callback_id}"
        )
        callbacks[callback_id] = callback
        return callback

    def get(self, execution: str, callback_id: str) -> Callback | None:
        return self._executions.get(execution, {}).get(callback_id)

    def list(self, execution: str) -> list[Callback] | None:
        callbacks = self._executions.get(execution)
        return None if callbacks is None else sorted(callbacks.values(), key=lambda c: c.id)

    def find_by_url(self, execution: str, url: str) -> Callback | None:
        prefix = f"/v1/{execution}/callbacks/"
        _, _, path = url.partition("/v1/")
        path = "/v1/" + path
        if not path.startswith(prefix):
            return None
        return self.get(execution, path.removeprefix(prefix).split("?", 1)[0].strip("/"))

    def deliver(self, execution: str, callback_id: str, method: str, payload: dict[str, Any]) -> str:
        callback = self.get(execution, callback_id)
        if callback is None:
            return Delivery.NOT_FOUND
        if method != callback.method:
            return Delivery.WRONG_METHOD
        waiter = callback.waiter
        if waiter is not None and not waiter.done():
            callback.waiter = None
            waiter.set_result(payload)
        else:
            callback.payloads.append(payload)
        return Delivery.ACCEPTED

    async def wait(self, callback: Callback, timeout: float, clock: Clock | None = None) -> dict[str, Any]:
        """The oldest payload not yet consumed, waiting up to ``timeout`` seconds of ``clock`` for one.

        A payload delivered in the same instant the timeout fires is returned, never lost; a payload that
        arrives after the timeout stays queued for the next wait."""
        if callback.payloads:
            return callback.payloads.popleft()
        if callback.waiter is not None and not callback.waiter.done():
            raise WorkflowError.tagged("ValueError", "another step is already waiting on this callback")
        clock = clock or self.clock
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        callback.waiter = waiter
        try:
            if isinstance(clock, SystemClock):
                # A timer handle instead of a second task: the cheap path when thousands of steps wait.
                handle = asyncio.get_running_loop().call_later(max(0.0, timeout), _expire, waiter)
                try:
                    return await waiter
                finally:
                    handle.cancel()
            sleeper = asyncio.ensure_future(clock.sleep(max(0.0, timeout)))
            sleeper.add_done_callback(lambda s: None if s.cancelled() else _expire(waiter))
            await asyncio.sleep(0)  # let the sleeper take its deadline from the clock now, not later
            try:
                return await waiter
            finally:
                sleeper.cancel()
        except _Expired:
            raise WorkflowError.tagged(
                "TimeoutError", f"no callback received within {_format_seconds(timeout)} seconds"
            ) from None
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # The execution is being cancelled just as a payload arrived: keep it queued.
                callback.payloads.appendleft(waiter.result())
            raise
        finally:
            if callback.waiter is waiter:
                callback.waiter = None
            if not waiter.done():
                waiter.cancel()


class _Expired(Exception):
    pass


def _expire(waiter: asyncio.Future[dict[str, Any]]) -> None:
    if not waiter.done():
        waiter.set_exception(_Expired())


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


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


class AdminSource(Protocol):
    """What the admin pages show; the Executions service provides it."""

    def admin_execution(self, execution_id: str) -> dict[str, Any] | None: ...

    def admin_executions(self, state: str | None = None) -> list[dict[str, Any]]: ...


def google_error(code: int, status: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, "status": status}}, status=code)


def http_app(
    registry: CallbackRegistry,
    authority: TokenAuthority,
    admin: AdminSource,
    *,
    now: Callable[[], float] | None = None,
) -> web.Application:
    clock_now = now or registry.clock.now

    def authenticate(request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization")
        if not header:
            return google_error(
                401,
                "UNAUTHENTICATED",
                "Request is missing required authentication credential. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential.",
            )
        token = authority.check_authorization_header(header)
        if token is None:
            return google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
                "cookie or other valid authentication credential.",
            )
        if CLOUD_PLATFORM_SCOPE not in token.scopes:
            return google_error(403, "PERMISSION_DENIED", "Request had insufficient authentication scopes.")
        return None

    def execution_name(request: web.Request) -> str:
        m = request.match_info
        return (
            f"projects/{m['project']}/locations/{m['location']}/workflows/{m['workflow']}"
            f"/executions/{m['execution']}"
        )

    async def send_http_callback(request: web.Request) -> web.StreamResponse:
        refused = authenticate(request)
        if refused is not None:
            return refused
        if request.content_length is not None and request.content_length > MAX_CALLBACK_BODY_BYTES:
            return google_error(413, "INVALID_ARGUMENT", "callback request body is too large")
        execution = execution_name(request)
        callback_id = request.match_info["callback"]
        callback = registry.get(execution, callback_id)
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
        payload = await request_payload(request, clock_now())
        outcome = registry.deliver(execution, callback_id, request.method, payload)
        if outcome != Delivery.ACCEPTED:  # the execution ended while the body was being read
            return google_error(404, "NOT_FOUND", f"callback {execution}/callbacks/{callback_id} not found")
        return web.Response(status=200, content_type="application/json", text="{}")

    async def list_callbacks(request: web.Request) -> web.StreamResponse:
        refused = authenticate(request)
        if refused is not None:
            return refused
        execution = execution_name(request)
        callbacks = registry.list(execution)
        if callbacks is None:
            return google_error(404, "NOT_FOUND", f"execution {execution} not found or no longer running")
        start = 0
        token = request.query.get("pageToken", "")
        if token:
            start = next((i for i, c in enumerate(callbacks) if c.id > token), len(callbacks))
        try:
            size = min(LIST_PAGE_SIZE, int(request.query.get("pageSize", LIST_PAGE_SIZE)) or LIST_PAGE_SIZE)
        except ValueError:
            return google_error(400, "INVALID_ARGUMENT", "pageSize must be an integer")
        page = callbacks[start : start + size]
        body: dict[str, Any] = {"callbacks": [c.describe() for c in page]}
        if start + size < len(callbacks):
            body["nextPageToken"] = page[-1].id
        return web.json_response(body)

    async def admin_execution(request: web.Request) -> web.StreamResponse:
        found = admin.admin_execution(request.match_info["execution"])
        if found is None:
            return google_error(404, "NOT_FOUND", "execution not found")
        return web.json_response(found)

    async def admin_executions(request: web.Request) -> web.StreamResponse:
        return web.json_response({"executions": admin.admin_executions(request.query.get("state"))})

    app = web.Application(client_max_size=MAX_CALLBACK_BODY_BYTES + 1024)
    base = "/v1/projects/{project}/locations/{location}/workflows/{workflow}/executions/{execution}/callbacks"
    app.router.add_route("GET", base, list_callbacks)
    app.router.add_route("*", base + "/{callback}", send_http_callback)
    app.router.add_route("GET", "/admin/executions", admin_executions)
    app.router.add_route("GET", "/admin/executions/{execution}", admin_execution)
    return app


def callback_for(registry: CallbackRegistry, execution: str, value: Mapping[str, Any]) -> Callback:
    """The callback an ``await_callback`` argument names, with the errors the real function raises."""
    if not isinstance(value, Mapping):
        raise WorkflowError.tagged("TypeError", "callback must be a map with a url field")
    url = value.get("url")
    if not isinstance(url, str):
        raise WorkflowError.tagged("TypeError", "callback.url must be a string")
    callback = registry.find_by_url(execution, url)
    if callback is None:
        raise WorkflowError.tagged("ValueError", f"callback {url} does not belong to this execution")
    return callback
