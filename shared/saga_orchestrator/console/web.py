"""The web console (``saga console``): the sagas of one saga workflow, one saga's timeline drawn as bars
over time, and buttons for the operator verbs. This module is its HTTP side (routes, guard, ``serve``);
its pages are drawn by ``pages``, a saga's timeline computed by ``bars``. It reads and acts only through
``SagaOrchestrator``, as the ``saga`` command does, so it works on the local cloud and on a Google Cloud
project alike.

Design decisions:

- **Server-rendered HTML**, one small static script and one stylesheet (``console/static/``); no build
  toolchain, nothing fetched from the network. The script polls a JSON endpoint: on the list page the
  answer carries the table rows rendered by the same Python code as the first page (one renderer, one
  place that escapes); on a saga page it carries a fingerprint of the saga, and the page reloads when it
  changes (unless the person is typing a reason).
- **Everything rendered is escaped**, and the Content-Security-Policy forbids inline scripts and styles
  altogether (see ``pages``).
- **A verb takes two requests**: the form (a reason is required) leads to a confirmation page that says
  what will be sent; only its button sends the verb. That POST carries a token made at start (a page of
  another site cannot read it, so it cannot make a browser send a verb), and when the console listens on
  a loopback address it answers only to loopback ``Host`` names (a rebound DNS name cannot read it).
- **The timeline of an ended saga** comes from its result, with a wait drawn for each operator decision
  (see ``bars``).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import secrets
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import urlencode

from aiohttp import web

from saga_orchestrator.console.pages import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    STEP_VERBS,
    VERB_TEXT,
    attention_note,
    confirm_page,
    error_page,
    fingerprint,
    list_page,
    list_rows,
    saga_page,
)
from saga_orchestrator.errors import (
    InvalidRequestError,
    SagaError,
    SagaNotFoundError,
    SagaNotRunningError,
    VerbNotApplicableError,
)
from saga_orchestrator.sagas import SAGA_STATES, SagaView

STATIC_DIR = Path(__file__).with_name("static")
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class SagaBackend(Protocol):
    """What the console reads and sends: ``SagaOrchestrator`` (the same calls as the ``saga`` command)."""

    workflow_path: str

    def get_saga_status(self, saga: str) -> SagaView: ...

    def read_saga(self, saga: str) -> tuple[SagaView, list[dict[str, Any]]]: ...

    def list_sagas(
        self, *, status: str | None = None, since: datetime.datetime | None = None, limit: int = 50
    ) -> list[SagaView]: ...

    def retry_step(self, saga: str, step: str, *, reason: str) -> str: ...

    def skip_step(self, saga: str, step: str, *, reason: str) -> str: ...

    def compensate_saga(self, saga: str, *, reason: str) -> str: ...

    def cancel_saga(self, saga: str, *, reason: str) -> str: ...

    def terminate_saga(self, saga: str, *, reason: str) -> str: ...


SENT = {
    "retry": "retry sent: the saga runs the action again.",
    "skip": "skip sent: the saga records the compensation as done by hand and goes on undoing.",
    "compensate": "compensate sent: the saga undoes its done steps.",
    "cancel": "cancel sent: the saga stops going forward and undoes what it did.",
    "terminate": "terminated: the execution was cancelled; nothing was undone.",
}


class Console:
    """The console's state: the backend it reads and acts through, the token a verb's POST must carry
    (made at start), and the ``Host`` names it answers to (None: any)."""

    def __init__(
        self, backend: SagaBackend, *, token: str | None = None, hosts: frozenset[str] | None = None
    ) -> None:
        self.backend = backend
        self.token = token or secrets.token_urlsafe(24)
        self.hosts = hosts

    @property
    def where(self) -> str:
        return self.backend.workflow_path

    def read_saga(self, saga: str) -> tuple[SagaView, list[dict[str, Any]]]:
        """The saga's view and, while it runs, its undo plan (blocking: the Google clients are)."""
        return self.backend.read_saga(saga)

    def send(self, saga: str, verb: str, step: str, reason: str) -> str:
        """Send ``verb`` through the backend; raises what the backend raises."""
        backend = self.backend
        actions: dict[str, Callable[[], str]] = {
            "retry": lambda: backend.retry_step(saga, step, reason=reason),
            "skip": lambda: backend.skip_step(saga, step, reason=reason),
            "compensate": lambda: backend.compensate_saga(saga, reason=reason),
            "cancel": lambda: backend.cancel_saga(saga, reason=reason),
            "terminate": lambda: backend.terminate_saga(saga, reason=reason),
        }
        return actions[verb]()


CONSOLE = web.AppKey("console", Console)


def status_of(error: BaseException) -> int:
    """The HTTP status a page shows an error with."""
    if isinstance(error, SagaNotFoundError):
        return 404
    if isinstance(error, SagaNotRunningError | VerbNotApplicableError):
        return 409
    if isinstance(error, InvalidRequestError):
        return 400
    return 502


def message_of(error: BaseException) -> str:
    """The error in words: the library's own message, else the API error's type and message."""
    return str(error) if isinstance(error, SagaError) else f"{type(error).__name__}: {error}"


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


@dataclass(frozen=True)
class Filters:
    state: str
    since: str
    limit: int
    moment: datetime.datetime | None


def parse_filters(query: Mapping[str, str]) -> Filters:
    """The list's filters from a query string. Raises ``InvalidRequestError`` naming every bad one."""
    from saga_orchestrator.console.cli import parse_since
    from saga_orchestrator.errors import FieldError

    state, since, raw_limit = (query.get(k, "").strip() for k in ("state", "since", "limit"))
    problems = []
    if state and state not in SAGA_STATES:
        problems.append(FieldError("state", f"must be one of {', '.join(SAGA_STATES)}"))
    limit = int(raw_limit) if raw_limit.isdigit() else DEFAULT_LIMIT if not raw_limit else 0
    if not 1 <= limit <= MAX_LIMIT:
        problems.append(FieldError("limit", f"must be a whole number from 1 to {MAX_LIMIT}"))
    moment = None
    try:
        moment = parse_since(since) if since else None
    except InvalidRequestError as error:
        problems += [FieldError("since", e.message) for e in error.errors]
    if problems:
        raise InvalidRequestError(problems)
    return Filters(state, since, limit, moment)


async def _listed(console: Console, query: Mapping[str, str]) -> tuple[Filters, list[SagaView]]:
    filters = parse_filters(query)
    views = await asyncio.to_thread(
        console.backend.list_sagas, status=filters.state or None, since=filters.moment, limit=filters.limit
    )
    return filters, views


async def list_handler(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    query = request.query
    try:
        filters, views = await _listed(console, query)
    except Exception as error:
        limit = query.get("limit", "")
        shown = int(limit) if limit.isdigit() and 1 <= int(limit) <= MAX_LIMIT else DEFAULT_LIMIT
        text = list_page(
            [],
            where=console.where,
            state=query.get("state", ""),
            since=query.get("since", ""),
            limit=shown,
            error=message_of(error),
        )
        return _html(text, status_of(error))
    text = list_page(
        views, where=console.where, state=filters.state, since=filters.since, limit=filters.limit
    )
    return _html(text)


async def list_api(request: web.Request) -> web.Response:
    try:
        _, views = await _listed(request.app[CONSOLE], request.query)
    except Exception as error:
        return web.json_response({"error": message_of(error)}, status=status_of(error))
    keys = ("saga_id", "state", "execution_name", "execution_state", "start_time", "end_time")
    return web.json_response(
        {
            "sagas": [{key: getattr(view, key) for key in keys} for view in views],
            "rows": list_rows(views),
            "attention": attention_note(views),
        }
    )


async def saga_handler(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    saga = request.query.get("id", "").strip()
    if not saga:
        raise web.HTTPSeeOther("/")
    try:
        view, plan = await asyncio.to_thread(console.read_saga, saga)
    except Exception as error:
        return _html(error_page(message_of(error), where=console.where), status_of(error))
    notice = SENT.get(request.query.get("sent", ""), "")
    return _html(saga_page(view, plan, where=console.where, notice=notice))


async def saga_api(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    try:
        view, plan = await asyncio.to_thread(console.read_saga, request.query.get("id", "").strip())
    except Exception as error:
        return web.json_response({"error": message_of(error)}, status=status_of(error))
    return web.json_response(
        {"saga": view.to_dict(), "undo_plan": plan, "version": fingerprint(view), "running": view.running},
        dumps=lambda value: json.dumps(value, default=str),
    )


async def _refused(console: Console, saga: str, message: str, status: int) -> web.Response:
    """The saga's page with ``message`` on top; the bare message when the saga cannot be read."""
    try:
        view, plan = await asyncio.to_thread(console.read_saga, saga)
    except Exception:
        return _html(error_page(message, where=console.where), status)
    return _html(saga_page(view, plan, where=console.where, error=message), status)


def _verb_form(form: Mapping[str, Any]) -> tuple[str, str, str, str, str]:
    """(saga, verb, step, reason, problem) from a verb's form; ``problem`` is "" when it can be sent."""
    saga, verb, step, reason = (str(form.get(k, "")).strip() for k in ("saga", "verb", "step", "reason"))
    problem = ""
    if verb not in VERB_TEXT:
        problem = f"no such verb {verb!r} (the verbs: {', '.join(VERB_TEXT)})"
    elif not reason:
        problem = f"{verb}: a reason is required (it is recorded in the saga's audit)"
    elif verb in STEP_VERBS and not step:
        problem = f"{verb}: name the step the saga waits on"
    return saga, verb, step if verb in STEP_VERBS else "", reason, problem


async def confirm_handler(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    saga, verb, step, reason, problem = _verb_form(await request.post())
    if not saga:
        raise web.HTTPSeeOther("/")
    if problem:
        return await _refused(console, saga, problem, 400)
    return _html(confirm_page(saga, verb, step, reason, where=console.where, token=console.token))


async def act_handler(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    form = await request.post()
    saga, verb, step, reason, problem = _verb_form(form)
    if not secrets.compare_digest(str(form.get("token", "")), console.token):
        message = "this form is stale or came from another page: open the saga again and confirm there"
        return _html(error_page(message, where=console.where), 403)
    if not saga:
        raise web.HTTPSeeOther("/")
    if problem:
        return await _refused(console, saga, problem, 400)
    if form.get("confirmed") != "yes":
        return _html(confirm_page(saga, verb, step, reason, where=console.where, token=console.token))
    try:
        await asyncio.to_thread(console.send, saga, verb, step, reason)
    except Exception as error:
        return await _refused(console, saga, message_of(error), status_of(error))
    raise web.HTTPSeeOther("/saga?" + urlencode({"id": saga, "sent": verb}))


@web.middleware
async def guard(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Answer only to the expected ``Host`` names, and send the security headers with every answer."""
    hosts = request.app[CONSOLE].hosts
    if hosts is not None and request.host.lower() not in hosts:
        return web.Response(status=421, text=f"this console answers at {', '.join(sorted(hosts))} only")
    response = await handler(request)
    response.headers.update(SECURITY_HEADERS)
    return response


def build_app(console: Console) -> web.Application:
    app = web.Application(middlewares=[guard], client_max_size=64 * 1024)
    app[CONSOLE] = console
    app.router.add_get("/", list_handler)
    app.router.add_get("/api/sagas", list_api)
    app.router.add_get("/saga", saga_handler)
    app.router.add_get("/api/saga", saga_api)
    app.router.add_post("/saga/confirm", confirm_handler)
    app.router.add_post("/saga/act", act_handler)
    app.router.add_static("/static/", STATIC_DIR)
    return app


def loopback_hosts(host: str, port: int) -> frozenset[str] | None:
    """The ``Host`` names a console bound to ``host`` answers to: the loopback names when it listens on
    a loopback address (None, any name, when it listens on others)."""
    if host.lower() not in LOOPBACK_NAMES:
        return None
    return frozenset({f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"})


def console_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve(backend: SagaBackend, host: str, port: int, out: IO[str]) -> int:
    """Serve the console until SIGINT or SIGTERM; prints its URL first (``port`` 0: a free one)."""
    return asyncio.run(_serve(backend, host, port, out))


async def _serve(backend: SagaBackend, host: str, port: int, out: IO[str]) -> int:
    console = Console(backend)
    runner = web.AppRunner(build_app(console), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = int(runner.addresses[0][1]) if port == 0 else port
        console.hosts = loopback_hosts(host, bound)
        print(
            f"saga console on {console_url(host, bound)} ({console.where}); Ctrl-C stops",
            file=out,
            flush=True,
        )
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopped.set)
        await stopped.wait()
    finally:
        await runner.cleanup()
    print("stopped", file=out, flush=True)
    return 0


__all__ = ["Console", "build_app", "serve"]
