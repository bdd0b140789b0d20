"""The Workflows connectors this engine supports, routed to the local emulators.

Each connector takes the REST API's arguments (REST JSON field names, ``bytes`` fields as base64 strings),
calls the emulator through the real async Google client on an insecure gRPC channel, and returns the
REST response resource as JSON (camelCase), as real connectors do
(https://cloud.google.com/workflows/docs/connectors). API errors become ``HttpError`` maps with the HTTP
code the REST API would answer and Google's JSON error body.

One channel per emulator is shared by every execution, opened on first use.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc
from google.api_core import exceptions as gexc
from google.protobuf import json_format
from google.protobuf.message import Message

from localcloud import _grpc
from localcloud.config import LocalCloudConfig
from localcloud.workflows.lang.errors import WorkflowError
from localcloud.workflows.service import protojson

# connector_params.timeout: default 1800 s, max 31536000 s (the Workflows JSON schema); we also cap a
# single RPC at the longest HTTP timeout Workflows allows.
DEFAULT_CONNECTOR_TIMEOUT_SECONDS = 1800.0
MAX_RPC_SECONDS = 1800.0

TASKS_CREATE = "googleapis.cloudtasks.v2.projects.locations.queues.tasks.create"
TASKS_DELETE = "googleapis.cloudtasks.v2.projects.locations.queues.tasks.delete"
PUBSUB_PUBLISH = "googleapis.pubsub.v1.projects.topics.publish"
SECRET_ACCESS_STRING = "googleapis.secretmanager.v1.projects.secrets.versions.accessString"


_TASKS = "/google.cloud.tasks.v2.CloudTasks/"
_PUBLISHER = "/google.pubsub.v1.Publisher/"
_SECRETS = "/google.cloud.secretmanager.v1.SecretManagerService/"


class Connectors:
    """Use from one event loop; ``close`` releases the channels.

    Each RPC is a bare unary call on raw protobuf messages (the wire format the generated clients send;
    the emulators read no request metadata): a connector step costs one call, without the generated
    clients' wrappers, interceptors and message conversions; and no network at all when the emulator
    runs on the same event loop."""

    def __init__(self, config: LocalCloudConfig) -> None:
        self._config = config
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._calls: dict[str, grpc.aio.UnaryUnaryMultiCallable] = {}
        self._routes: dict[str, Callable[[Mapping[str, Any], str, float], Awaitable[Any]]] = {
            TASKS_CREATE: self._tasks_create,
            TASKS_DELETE: self._tasks_delete,
            PUBSUB_PUBLISH: self._pubsub_publish,
            SECRET_ACCESS_STRING: self._secret_access_string,
        }

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._routes)

    async def call(
        self,
        name: str,
        args: Mapping[str, Any],
        *,
        project_id: str,
        connector_params: Mapping[str, Any] | None = None,
    ) -> Any:
        route = self._routes.get(name)
        if route is None:
            raise WorkflowError.tagged("ValueError", f"connector {name} is not supported by this engine")
        if not isinstance(args, Mapping):
            raise WorkflowError.tagged("TypeError", f"{name}: args must be a map")
        timeout = _timeout_of(connector_params)
        try:
            return await route(args, project_id, timeout)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise WorkflowError.tagged(
                    "TimeoutError", f"{name} did not finish within {timeout:g} seconds"
                ) from None
            raise http_error(gexc.from_grpc_error(error)) from None

    async def close(self) -> None:
        channels, self._channels, self._calls = self._channels, {}, {}
        for channel in channels.values():
            await channel.close()

    def _unary(
        self, address: str, method: str, response_type: type[Message]
    ) -> grpc.aio.UnaryUnaryMultiCallable:
        key = address + method
        call = self._calls.get(key)
        if call is None:
            channel = self._channels.get(address)
            if channel is None:
                channel = self._channels[address] = _channel(address)
            call = self._calls[key] = channel.unary_unary(
                method,
                request_serializer=_serialize,
                response_deserializer=response_type.FromString,
            )
        return call

    async def _tasks_create(self, args: Mapping[str, Any], project_id: str, timeout: float) -> Any:
        parent = _required_string(args, "parent", TASKS_CREATE)
        body = args.get("body") or {}
        if not isinstance(body, Mapping):
            raise _invalid_argument("Invalid JSON payload received. body must be an object.")
        request = _parse({**body, "parent": parent}, _messages().CreateTaskRequest)
        call = self._unary(self._config.tasks, _TASKS + "CreateTask", _messages().Task)
        task = await call(request, timeout=min(timeout, MAX_RPC_SECONDS))
        return _to_json(task)

    async def _tasks_delete(self, args: Mapping[str, Any], project_id: str, timeout: float) -> Any:
        name = _required_string(args, "name", TASKS_DELETE)
        messages = _messages()
        call = self._unary(self._config.tasks, _TASKS + "DeleteTask", messages.Empty)
        await call(messages.DeleteTaskRequest(name=name), timeout=min(timeout, MAX_RPC_SECONDS))
        return {}

    async def _pubsub_publish(self, args: Mapping[str, Any], project_id: str, timeout: float) -> Any:
        topic = _required_string(args, "topic", PUBSUB_PUBLISH)
        body = args.get("body") or {}
        if not isinstance(body, Mapping):
            raise _invalid_argument("Invalid JSON payload received. body must be an object.")
        messages = _messages()
        request = _parse({**body, "topic": topic}, messages.PublishRequest)
        call = self._unary(self._config.pubsub, _PUBLISHER + "Publish", messages.PublishResponse)
        response = await call(request, timeout=min(timeout, MAX_RPC_SECONDS))
        return {"messageIds": list(response.message_ids)}

    async def _secret_access_string(self, args: Mapping[str, Any], project_id: str, timeout: float) -> Any:
        secret_id = _required_string(args, "secret_id", SECRET_ACCESS_STRING)
        version = args.get("version", "latest")
        project = args.get("project_id", project_id)
        if not isinstance(version, str | int) or isinstance(version, bool) or not isinstance(project, str):
            raise WorkflowError.tagged(
                "TypeError", f"{SECRET_ACCESS_STRING}: project_id and version must be strings"
            )
        name = f"projects/{project}/secrets/{secret_id}/versions/{version}"
        messages = _messages()
        call = self._unary(
            self._config.secretmanager, _SECRETS + "AccessSecretVersion", messages.AccessSecretVersionResponse
        )
        response = await call(
            messages.AccessSecretVersionRequest(name=name), timeout=min(timeout, MAX_RPC_SECONDS)
        )
        try:
            return bytes(response.payload.data).decode("utf-8")
        except UnicodeDecodeError:
            raise WorkflowError.tagged("ValueError", f"secret version {name} is not valid UTF-8") from None


def _channel(address: str) -> grpc.aio.Channel:
    """In process when the emulator serves on this event loop (``localcloud serve``), else a real one."""
    local = getattr(_grpc, "channel", None)
    return local(address) if local is not None else grpc.aio.insecure_channel(address)


class _Messages:
    """The raw protobuf classes of the connectors' requests and responses (imported on first use)."""

    def __init__(self) -> None:
        from google.cloud.secretmanager_v1.types import service as secrets
        from google.cloud.tasks_v2.types import cloudtasks, task
        from google.protobuf import empty_pb2
        from google.pubsub_v1.types import pubsub

        self.CreateTaskRequest = cloudtasks.CreateTaskRequest.pb()
        self.DeleteTaskRequest = cloudtasks.DeleteTaskRequest.pb()
        self.Task = task.Task.pb()
        self.Empty = empty_pb2.Empty
        self.PublishRequest = pubsub.PublishRequest.pb()
        self.PublishResponse = pubsub.PublishResponse.pb()
        self.AccessSecretVersionRequest = secrets.AccessSecretVersionRequest.pb()
        self.AccessSecretVersionResponse = secrets.AccessSecretVersionResponse.pb()


_loaded: list[_Messages] = []


def _messages() -> _Messages:
    if not _loaded:
        _loaded.append(_Messages())
    return _loaded[0]


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def http_error(error: gexc.GoogleAPICallError) -> WorkflowError:
    """The ``HttpError`` map a connector raises for an API error (the REST API's code and error body)."""
    code = int(error.code or 500)
    status = error.grpc_status_code.name if error.grpc_status_code is not None else "UNKNOWN"
    return WorkflowError.tagged(
        "HttpError",
        f"HTTP server responded with error code {code}",
        code=code,
        headers={"Content-Type": "application/json; charset=UTF-8"},
        body={"error": {"code": code, "message": error.message, "status": status}},
    )


def _invalid_argument(message: str) -> WorkflowError:
    return http_error(gexc.InvalidArgument(message))


def _timeout_of(params: Mapping[str, Any] | None) -> float:
    if not params:
        return DEFAULT_CONNECTOR_TIMEOUT_SECONDS
    value = params.get("timeout", DEFAULT_CONNECTOR_TIMEOUT_SECONDS)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise WorkflowError.tagged("TypeError", "connector_params.timeout must be a positive number")
    return float(value)


def _required_string(args: Mapping[str, Any], key: str, connector: str) -> str:
    value = args.get(key)
    if value is None:
        raise WorkflowError.tagged("ValueError", f"{connector}: missing required argument '{key}'")
    if not isinstance(value, str):
        raise WorkflowError.tagged("TypeError", f"{connector}: argument '{key}' must be a string")
    return value


def _parse(document: Mapping[str, Any], message_type: type[Message]) -> Message:
    try:
        return protojson.parse(document, message_type)
    except json_format.ParseError as error:
        raise _invalid_argument(f"Invalid JSON payload received. {error}") from None


def _to_json(message: Message) -> dict[str, Any]:
    return protojson.to_json(message)
