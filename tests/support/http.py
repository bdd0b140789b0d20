"""The one recording HTTP server of the tests: it stands in for a saga participant, a callback receiver,
a Cloud Tasks target or a Pub/Sub push endpoint.

It runs on its own threads (``http.server``), so synchronous tests, Flask test clients and the emulators'
event loops can all call it, and it keeps answering while a test blocks its own loop. It speaks HTTP/1.1
with keep-alive, so a test can tell connections apart by ``client_port``."""

from __future__ import annotations

import contextlib
import http.server
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol


class Clock(Protocol):
    def now(self) -> float: ...


class WallClock:
    def now(self) -> float:
        return time.time()


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # with the query string, as sent
    headers: dict[str, str]
    body: bytes
    at: float = 0.0  # the server's clock (seconds) when the request arrived
    client_port: int = 0  # the caller's end of the connection: one port per kept-alive connection


@dataclass(frozen=True)
class ScriptedResponse:
    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"
    delay_seconds: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()


Script = list[ScriptedResponse]


def _scripted(responses: tuple[ScriptedResponse | int, ...]) -> Script:
    return [r if isinstance(r, ScriptedResponse) else ScriptedResponse(status=r) for r in responses]


class RecordingHttpServer:
    """A threaded HTTP server on 127.0.0.1 that records every request and answers from a script.

    - ``script(path, *responses)`` answers requests to ``path`` (query string ignored) in turn; the last
      response repeats. ``script_default(*responses)`` does the same for every path without a script of
      its own. A response may be a bare status code. Unscripted requests answer 200 ``{}``.
    - ``drop(path)`` closes the connection without answering; ``hold()`` keeps every answer back until
      ``release()`` (``in_flight`` and ``max_in_flight`` count the requests not yet answered).
    - ``tls=(certfile, keyfile)`` serves HTTPS (see ``tests.support.tls``); ``clock`` stamps ``at``.

    A request is recorded when it arrives, before it is answered: a test that needs the caller to have
    read the answer (a kept-alive connection back in the caller's pool) waits for the caller's own sign.

    Use it as a context manager, or call ``start()`` and ``stop()``."""

    def __init__(self, tls: tuple[str, str] | None = None, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or WallClock()
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._scripts: dict[str, Script] = {}
        self._default: Script = []
        self._dropping: set[str] = set()
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._released.set()
        self._stopped = threading.Event()
        self._server = _Server(self)
        self._scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self._scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/") -> str:
        return f"{self._scheme}://127.0.0.1:{self.port}{path}"

    def start(self) -> RecordingHttpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, let held requests go and close every open connection."""
        self._stopped.set()
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for connection in self._connections:
                _shut(connection)
        self._thread.join(timeout=5)

    def __enter__(self) -> RecordingHttpServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def script(self, path: str, *responses: ScriptedResponse | int) -> None:
        with self._lock:
            self._scripts[path] = _scripted(responses)

    def script_default(self, *responses: ScriptedResponse | int) -> None:
        with self._lock:
            self._default = _scripted(responses)

    def drop(self, path: str) -> None:
        with self._lock:
            self._dropping.add(path)

    def hold(self) -> None:
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.split("?", 1)[0] == path]

    def _admit(self, request: RecordedRequest) -> ScriptedResponse | None:
        """Record ``request`` and pick its answer (``None``: drop the connection)."""
        path = request.path.split("?", 1)[0]
        with self._lock:
            self.requests.append(request)
            if path in self._dropping:
                return None
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            script = self._scripts.get(path) or self._default
            if not script:
                return ScriptedResponse()
            return script.pop(0) if len(script) > 1 else script[0]

    def _answer(self, response: ScriptedResponse) -> ScriptedResponse:
        """Wait as the response and ``hold`` ask, then count the request answered."""
        if response.delay_seconds:
            self._stopped.wait(response.delay_seconds)
        self._released.wait()
        with self._lock:
            self.in_flight -= 1
        return response

    def _track(self, connection: socket.socket, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: RecordingHttpServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.owner = owner

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up before its answer is written (a timeout under test) is expected."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, True)

    def finish(self) -> None:
        self.server.owner._track(self.connection, False)
        super().finish()

    def _handle(self) -> None:
        owner = self.server.owner
        request = RecordedRequest(
            self.command,
            self.path,
            dict(self.headers.items()),
            self._read_body(),
            owner.clock.now(),
            int(self.client_address[1]),
        )
        response = owner._admit(request)
        if response is None:
            self.close_connection = True
            _shut(self.connection)
            return
        owner._answer(response)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""
        body = b""
        while size := int(self.rfile.readline().split(b";", 1)[0], 16):
            body += self.rfile.read(size)
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return body

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


def _shut(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)
