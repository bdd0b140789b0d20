"""In-memory stand-ins for the Google APIs this library calls, served over real gRPC on 127.0.0.1.

For tests of the library and the functions only (the local cloud under ``localcloud/`` is the faithful
emulator). ``FakeGoogleApis().start()`` serves ``google.pubsub.v1.Publisher/Publish``, the Workflows
Executions API (create/list/get/cancel, list ``filter`` on ``labels.<key>="<value>"``), Secret Manager
``AccessSecretVersion`` and Cloud Tasks ``CreateTask`` on one port; ``env()`` gives the emulator variables
for ``ClientFactory``. ``fail_next(method, error)`` makes the next call of a method raise ``error``
(a ``google.api_core.exceptions`` instance), as the real service would.
"""

from __future__ import annotations

import re
import threading
import uuid
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import google_crc32c
import grpc
from google.api_core import exceptions as gexc
from google.cloud import secretmanager, tasks_v2
from google.cloud.workflows import executions_v1
from google.protobuf import timestamp_pb2
from google.pubsub_v1 import types as pubsub_types


@dataclass
class PublishedMessage:
    topic: str
    data: bytes
    attributes: dict[str, str]
    message_id: str


@dataclass
class FakeState:
    published: list[PublishedMessage] = field(default_factory=list)
    executions: dict[str, executions_v1.Execution] = field(default_factory=dict)
    secrets: dict[str, list[bytes]] = field(default_factory=dict)
    tasks: dict[str, tasks_v2.Task] = field(default_factory=dict)
    secret_accesses: int = 0
    corrupt_secrets: bool = False
    failures: dict[str, list[Exception]] = field(default_factory=dict)
    # Calls received per method name (``ListExecutions``, ``Publish``, ...), failed ones included.
    calls: dict[str, int] = field(default_factory=dict)


class FakeGoogleApis:
    def __init__(self) -> None:
        self.state = FakeState()
        self._lock = threading.Lock()
        self._server: grpc.Server | None = None
        self.address = ""

    # --- lifecycle --------------------------------------------------------------------------------------

    def start(self) -> FakeGoogleApis:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        server.add_generic_rpc_handlers(self._handlers())
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server = server
        self.address = f"127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None)
            self._server = None

    def env(self) -> dict[str, str]:
        return {
            "PUBSUB_EMULATOR_HOST": self.address,
            "CLOUD_TASKS_EMULATOR_HOST": self.address,
            "SECRET_MANAGER_EMULATOR_HOST": self.address,
            "WORKFLOWS_EMULATOR_HOST": self.address,
        }

    # --- test controls ----------------------------------------------------------------------------------

    def fail_next(self, method: str, error: Exception) -> None:
        with self._lock:
            self.state.failures.setdefault(method, []).append(error)

    def add_secret_version(self, project: str, secret: str, value: bytes) -> None:
        with self._lock:
            self.state.secrets.setdefault(f"projects/{project}/secrets/{secret}", []).append(value)

    def published(self, topic: str | None = None) -> list[PublishedMessage]:
        with self._lock:
            return [m for m in self.state.published if topic is None or m.topic == topic]

    # --- RPCs -------------------------------------------------------------------------------------------

    def _maybe_fail(self, method: str) -> None:
        with self._lock:
            self.state.calls[method] = self.state.calls.get(method, 0) + 1
            queue = self.state.failures.get(method)
            error = queue.pop(0) if queue else None
        if error is not None:
            raise error

    def Publish(self, request: Any) -> Any:
        self._maybe_fail("Publish")
        ids = []
        with self._lock:
            for message in request.messages:
                message_id = str(len(self.state.published) + 1)
                self.state.published.append(
                    PublishedMessage(request.topic, bytes(message.data), dict(message.attributes), message_id)
                )
                ids.append(message_id)
        return pubsub_types.PublishResponse(message_ids=ids)

    def CreateExecution(self, request: Any) -> Any:
        self._maybe_fail("CreateExecution")
        execution = executions_v1.Execution(request.execution)
        execution.name = f"{request.parent}/executions/{uuid.uuid4()}"
        execution.state = executions_v1.Execution.State.ACTIVE  # type: ignore[assignment]
        stamp = timestamp_pb2.Timestamp()
        stamp.GetCurrentTime()
        execution.start_time = stamp
        with self._lock:
            self.state.executions[execution.name] = execution
        return execution

    def ListExecutions(self, request: Any) -> Any:
        self._maybe_fail("ListExecutions")
        wanted: dict[str, str] = {}
        for key, value in re.findall(r'labels\.([a-z0-9_-]+)\s*=\s*"([^"]*)"', request.filter or ""):
            wanted[key] = value
        with self._lock:
            found = [
                e
                for name, e in reversed(self.state.executions.items())
                if name.startswith(request.parent + "/")
                and all(e.labels.get(k) == v for k, v in wanted.items())
            ]
        return executions_v1.ListExecutionsResponse(executions=found)

    def GetExecution(self, request: Any) -> Any:
        self._maybe_fail("GetExecution")
        with self._lock:
            if request.name not in self.state.executions:
                raise gexc.NotFound(f"execution {request.name} not found")
            return self.state.executions[request.name]

    def CancelExecution(self, request: Any) -> Any:
        self._maybe_fail("CancelExecution")
        with self._lock:
            execution = self.state.executions.get(request.name)
            if execution is None:
                raise gexc.NotFound(f"execution {request.name} not found")
            if execution.state != executions_v1.Execution.State.ACTIVE:
                raise gexc.FailedPrecondition("execution is not active")
            execution.state = executions_v1.Execution.State.CANCELLED  # type: ignore[assignment]
            return execution

    def AccessSecretVersion(self, request: Any) -> Any:
        self._maybe_fail("AccessSecretVersion")
        match = re.fullmatch(r"(projects/[^/]+/secrets/[^/]+)/versions/(latest|\d+)", request.name)
        if not match:
            raise gexc.InvalidArgument(f"bad secret version name {request.name}")
        with self._lock:
            self.state.secret_accesses += 1
            versions = self.state.secrets.get(match.group(1))
            if not versions:
                raise gexc.NotFound(f"Secret [{match.group(1)}] not found or has no versions.")
            number = len(versions) if match.group(2) == "latest" else int(match.group(2))
            if not 1 <= number <= len(versions):
                raise gexc.NotFound(f"Secret Version [{request.name}] not found.")
            data = versions[number - 1]
            corrupt = self.state.corrupt_secrets
        checksum = google_crc32c.Checksum()
        checksum.update(data)
        crc = int(checksum.hexdigest(), 16) ^ (1 if corrupt else 0)
        return secretmanager.AccessSecretVersionResponse(
            name=f"{match.group(1)}/versions/{number}",
            payload=secretmanager.SecretPayload(data=data, data_crc32c=crc),
        )

    def CreateTask(self, request: Any) -> Any:
        self._maybe_fail("CreateTask")
        task = tasks_v2.Task(request.task)
        if not task.name:
            task.name = f"{request.parent}/tasks/{uuid.uuid4().int % 10**19}"
        with self._lock:
            if task.name in self.state.tasks:
                raise gexc.AlreadyExists(f"Requested entity already exists: {task.name}")
            self.state.tasks[task.name] = task
        return task

    def _handlers(self) -> list[grpc.GenericRpcHandler]:
        def unary(method: Any, request_type: Any, response_type: Any) -> grpc.RpcMethodHandler:
            def call(request: Any, context: grpc.ServicerContext) -> Any:
                try:
                    return method(request)
                except gexc.GoogleAPICallError as error:
                    code = error.grpc_status_code or grpc.StatusCode.UNKNOWN
                    context.abort(code, error.message)

            return grpc.unary_unary_rpc_method_handler(
                call,
                request_deserializer=request_type.deserialize,
                response_serializer=response_type.serialize,
            )

        ex = executions_v1
        return [
            grpc.method_handlers_generic_handler(
                "google.pubsub.v1.Publisher",
                {"Publish": unary(self.Publish, pubsub_types.PublishRequest, pubsub_types.PublishResponse)},
            ),
            grpc.method_handlers_generic_handler(
                "google.cloud.workflows.executions.v1.Executions",
                {
                    "CreateExecution": unary(self.CreateExecution, ex.CreateExecutionRequest, ex.Execution),
                    "ListExecutions": unary(
                        self.ListExecutions, ex.ListExecutionsRequest, ex.ListExecutionsResponse
                    ),
                    "GetExecution": unary(self.GetExecution, ex.GetExecutionRequest, ex.Execution),
                    "CancelExecution": unary(self.CancelExecution, ex.CancelExecutionRequest, ex.Execution),
                },
            ),
            grpc.method_handlers_generic_handler(
                "google.cloud.secretmanager.v1.SecretManagerService",
                {
                    "AccessSecretVersion": unary(
                        self.AccessSecretVersion,
                        secretmanager.AccessSecretVersionRequest,
                        secretmanager.AccessSecretVersionResponse,
                    )
                },
            ),
            grpc.method_handlers_generic_handler(
                "google.cloud.tasks.v2.CloudTasks",
                {"CreateTask": unary(self.CreateTask, tasks_v2.CreateTaskRequest, tasks_v2.Task)},
            ),
        ]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class ScriptedResponse:
    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"
    delay_seconds: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()


class RecordingHttpServer:
    """A threaded HTTP server on 127.0.0.1 that records every request and answers, per path, from a
    script (``script(path, *responses)``; the last response repeats). Unscripted paths answer 200 ``{}``.
    ``drop_connection=True`` on a path closes the socket without answering. With ``tls=(certfile,
    keyfile)`` it speaks HTTPS (see ``self_signed_certificate``)."""

    def __init__(self, tls: tuple[str, str] | None = None) -> None:
        import http.server

        self.requests: list[RecordedRequest] = []
        self._scripts: dict[str, list[ScriptedResponse]] = {}
        self._dropping: set[str] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                with owner._lock:
                    owner.requests.append(
                        RecordedRequest(self.command, self.path, dict(self.headers.items()), body)
                    )
                    drop = path in owner._dropping
                    script = owner._scripts.get(path)
                    response = (
                        (script.pop(0) if len(script) > 1 else script[0]) if script else ScriptedResponse()
                    )
                if drop:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if response.delay_seconds:
                    owner._stopped.wait(response.delay_seconds)
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.body)))
                for name, value in response.headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(response.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._scheme = "http"
        if tls is not None:
            import ssl

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
        self._stopped.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def script(self, path: str, *responses: ScriptedResponse) -> None:
        with self._lock:
            self._scripts[path] = list(responses)

    def drop(self, path: str) -> None:
        with self._lock:
            self._dropping.add(path)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.split("?", 1)[0] == path]


def self_signed_certificate(directory: str) -> tuple[str, str]:
    """A certificate for 127.0.0.1 (and ``localhost``), its own CA: ``(cert.pem, key.pem)`` paths in
    ``directory``. Needs ``cryptography`` (a development dependency)."""
    import datetime
    import ipaddress
    import os

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "saga test participant")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path = os.path.join(directory, "cert.pem")
    key_path = os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as out:
        out.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as out:
        out.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert_path, key_path
