"""The Workflows connectors this engine supports, routed to the local emulators.

Each connector takes the REST API's arguments (REST JSON field names, ``bytes`` fields as base64 strings),
calls the emulator through the real async Google client on an insecure gRPC channel, and returns the
REST response resource as JSON (camelCase), as real connectors do
(https://cloud.google.com/workflows/docs/connectors). API errors become ``HttpError`` maps with the HTTP
code the REST API would answer and Google's JSON error body.

One channel and client per emulator is shared by every execution, opened on first use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc
from google.api_core import exceptions as gexc
from google.protobuf import json_format
from google.protobuf.message import Message

from localcloud.config import LocalCloudConfig
from localcloud.workflows.errors import WorkflowError

# connector_params.timeout: default 1800 s, max 31536000 s (the Workflows JSON schema); we also cap a
# single RPC at the longest HTTP timeout Workflows allows.
DEFAULT_CONNECTOR_TIMEOUT_SECONDS = 1800.0
MAX_RPC_SECONDS = 1800.0

TASKS_CREATE = "googleapis.cloudtasks.v2.projects.locations.queues.tasks.create"
TASKS_DELETE = "googleapis.cloudtasks.v2.projects.locations.queues.tasks.delete"
PUBSUB_PUBLISH = "googleapis.pubsub.v1.projects.topics.publish"
SECRET_ACCESS_STRING = "googleapis.secretmanager.v1.projects.secrets.versions.accessString"


class Connectors:
    """Use from one event loop; ``close`` releases the channels."""

    def __init__(self, config: LocalCloudConfig) -> None:
        self._config = config
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._clients: dict[str, Any] = {}
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
            return await asyncio.wait_for(route(args, project_id, timeout), timeout)
        except gexc.GoogleAPICallError as error:
            raise http_error(error) from None
        except TimeoutError:
            raise WorkflowError.tagged(
                "TimeoutError", f"{name} did not finish within {timeout:g} seconds"
            ) from None

    async def close(self) -> None:
        channels, self._channels, self._clients = self._channels, {}, {}
        for channel in channels.values():
            await channel.close()

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = grpc.aio.insecure_channel(address)
            self._channels[address] = channel
        return channel

    def _tasks(self) -> Any:
        client = self._clients.get("tasks")
        if client is None:
            from google.cloud.tasks_v2.services.cloud_tasks import CloudTasksAsyncClient
            from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcAsyncIOTransport

            transport = CloudTasksGrpcAsyncIOTransport(channel=self._channel(self._config.tasks))
            client = self._clients["tasks"] = CloudTasksAsyncClient(transport=transport)
        return client

    def _publisher(self) -> Any:
        client = self._clients.get("pubsub")
        if client is None:
            from google.pubsub_v1.services.publisher import PublisherAsyncClient
            from google.pubsub_v1.services.publisher.transports import PublisherGrpcAsyncIOTransport

            transport = PublisherGrpcAsyncIOTransport(channel=self._channel(self._config.pubsub))
            client = self._clients["pubsub"] = PublisherAsyncClient(transport=transport)
        return client

    def _secrets(self) -> Any:
        client = self._clients.get("secretmanager")
        if client is None:
            from google.cloud.secretmanager_v1.services.secret_manager_service import (
                SecretManagerServiceAsyncClient,
            )
            from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
                SecretManagerServiceGrpcAsyncIOTransport,
            )

            transport = SecretManagerServiceGrpcAsyncIOTransport(
                channel=self._channel(self._config.secretmanager)
            )
            client = self._clients["secretmanager"] = SecretManagerServiceAsyncClient(transport=transport)
        return client

    async def _tasks_create(self, args: Mapping[str, Any], project_id: str, timeout: float) -> Any:
        from google.cloud.tasks_v2.types import cloudtasks

        parent = _required_string(args, "parent", TASKS_CREATE)
        body = args.get("body") or {}
        if not isinstance(body, Mapping):
            raise _invalid_argument("Invalid JSON payload received. body must be an object.")
        request = _parse({**body, "parent": parent}, cloudtasks.CreateTaskRequest.pb())
        task = await self._tasks().create_task(
            request=cloudtasks.CreateTaskRequest.wrap(request),
            retry=None,
            timeout=min(timeout, MAX_RPC_SECONDS),
        )
        return _to_json(type(task).pb(task))

    async def _tasks_delete(self, args: Mapping[str, Any], project_id: str, timeout: float) -> Any:
        name = _required_string(args, "name", TASKS_DELETE)
        await self._tasks().delete_task(name=name, retry=None, timeout=min(timeout, MAX_RPC_SECONDS))
        return {}

    async def _pubsub_publish(self, args: Mapping[str, Any], project_id: str, timeout: float) -> Any:
        from google.pubsub_v1.types import pubsub

        topic = _required_string(args, "topic", PUBSUB_PUBLISH)
        body = args.get("body") or {}
        if not isinstance(body, Mapping):
            raise _invalid_argument("Invalid JSON payload received. body must be an object.")
        request = _parse({**body, "topic": topic}, pubsub.PublishRequest.pb())
        response = await self._publisher().publish(
            request=pubsub.PublishRequest.wrap(request), retry=None, timeout=min(timeout, MAX_RPC_SECONDS)
        )
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
        response = await self._secrets().access_secret_version(
            name=name, retry=None, timeout=min(timeout, MAX_RPC_SECONDS)
        )
        try:
            return bytes(response.payload.data).decode("utf-8")
        except UnicodeDecodeError:
            raise WorkflowError.tagged("ValueError", f"secret version {name} is not valid UTF-8") from None


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
    message = message_type()
    try:
        json_format.ParseDict(dict(document), message)
    except json_format.ParseError as error:
        raise _invalid_argument(f"Invalid JSON payload received. {error}") from None
    return message


def _to_json(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message)
