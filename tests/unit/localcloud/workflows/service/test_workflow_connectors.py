"""Connectors against the real local emulators, through the real async Google clients: REST-shaped
arguments in, REST JSON out, API errors as HttpError maps with the REST status code."""

from __future__ import annotations

import base64
import dataclasses
import importlib.util
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from localcloud.auth import TokenAuthority
from localcloud.clock import ManualClock
from localcloud.config import LocalCloudConfig
from localcloud.runtime import Context
from localcloud.workflows.lang.errors import WorkflowError
from localcloud.workflows.service.connectors import (
    PUBSUB_PUBLISH,
    SECRET_ACCESS_STRING,
    TASKS_CREATE,
    TASKS_DELETE,
    Connectors,
)


def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # the parent package is not there either
        return False


PROJECT = "local-project"
QUEUE = f"projects/{PROJECT}/locations/us-central1/queues/saga-tasks"


@dataclasses.dataclass
class Stack:
    ctx: Context
    connectors: Connectors


async def start_stack(*services: str) -> tuple[Context, list[Any]]:
    env = {
        "CLOUD_TASKS_EMULATOR_HOST": "127.0.0.1:0",
        "SECRET_MANAGER_EMULATOR_HOST": "127.0.0.1:0",
        "PUBSUB_EMULATOR_HOST": "127.0.0.1:0",
    }
    clock = ManualClock()
    ctx = Context(
        config=LocalCloudConfig.from_env(env), clock=clock, authority=TokenAuthority(clock, key_size=1024)
    )
    started: list[Any] = []
    import importlib

    for key in services:
        module = importlib.import_module(f"localcloud.{key}.server")
        service = await module.start(ctx)
        started.append(service)
        ctx.config = dataclasses.replace(ctx.config, **{key: service.address})
    return ctx, started


@pytest.fixture
async def tasks_stack() -> AsyncIterator[Stack]:
    if not has_module("localcloud.tasks.server"):
        pytest.skip("the Cloud Tasks emulator (localcloud.tasks) is not there yet")
    ctx, started = await start_stack("tasks")
    import grpc
    from google.cloud import tasks_v2
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcAsyncIOTransport

    client = tasks_v2.CloudTasksAsyncClient(
        transport=CloudTasksGrpcAsyncIOTransport(channel=grpc.aio.insecure_channel(ctx.config.tasks))
    )
    await client.create_queue(parent=QUEUE.rsplit("/queues/", 1)[0], queue=tasks_v2.Queue(name=QUEUE))
    connectors = Connectors(ctx.config)
    yield Stack(ctx, connectors)
    await connectors.close()
    await client.transport.close()
    for service in reversed(started):
        await service.stop()


@pytest.fixture
async def secrets_stack() -> AsyncIterator[Stack]:
    if not has_module("localcloud.secretmanager.server"):
        pytest.skip("the Secret Manager emulator (localcloud.secretmanager) is not there yet")
    ctx, started = await start_stack("secretmanager")
    import grpc
    from google.cloud import secretmanager_v1
    from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
        SecretManagerServiceGrpcAsyncIOTransport,
    )

    client = secretmanager_v1.SecretManagerServiceAsyncClient(
        transport=SecretManagerServiceGrpcAsyncIOTransport(
            channel=grpc.aio.insecure_channel(ctx.config.secretmanager)
        )
    )
    secret = await client.create_secret(
        parent=f"projects/{PROJECT}",
        secret_id="payment-api-key",
        secret=secretmanager_v1.Secret(replication={"automatic": {}}),
    )
    await client.add_secret_version(
        parent=secret.name, payload=secretmanager_v1.SecretPayload(data=b"old-key")
    )
    await client.add_secret_version(
        parent=secret.name, payload=secretmanager_v1.SecretPayload(data=b"s3cr3t-key")
    )
    connectors = Connectors(ctx.config)
    yield Stack(ctx, connectors)
    await connectors.close()
    await client.transport.close()
    for service in reversed(started):
        await service.stop()


def task_args(name: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "parent": QUEUE,
        "body": {
            "task": {
                "name": f"{QUEUE}/tasks/{name}",
                "scheduleTime": "2026-01-02T00:00:00Z",
                "dispatchDeadline": "600s",
                "httpRequest": {
                    "url": "http://127.0.0.1:9/step",
                    "httpMethod": "POST",
                    "headers": {"Content-Type": "application/json"},
                    "body": base64.b64encode(json.dumps(body).encode()).decode(),
                    "oidcToken": {
                        "serviceAccountEmail": "invoker@local-project.iam.gserviceaccount.com",
                        "audience": "http://127.0.0.1:9/step",
                    },
                },
            }
        },
    }


async def test_tasks_create_returns_the_task_as_rest_json(tasks_stack: Stack) -> None:
    task = await tasks_stack.connectors.call(
        TASKS_CREATE, task_args("e1-0-execute", {"a": 1}), project_id=PROJECT
    )
    assert task["name"] == f"{QUEUE}/tasks/e1-0-execute"
    assert task["httpRequest"]["url"] == "http://127.0.0.1:9/step"
    assert task["httpRequest"]["httpMethod"] == "POST"
    assert task["scheduleTime"] == "2026-01-02T00:00:00Z"
    assert task["dispatchDeadline"] == "600s"
    assert task["createTime"].endswith("Z")


async def test_tasks_create_with_a_taken_name_is_http_409(tasks_stack: Stack) -> None:
    await tasks_stack.connectors.call(TASKS_CREATE, task_args("dup", {}), project_id=PROJECT)
    with pytest.raises(WorkflowError) as raised:
        await tasks_stack.connectors.call(TASKS_CREATE, task_args("dup", {}), project_id=PROJECT)
    payload = raised.value.payload
    assert payload["tags"] == ["HttpError"]
    assert payload["code"] == 409
    assert payload["body"]["error"]["status"] == "ALREADY_EXISTS"


async def test_tasks_create_with_an_unknown_field_is_http_400(tasks_stack: Stack) -> None:
    args = task_args("bad", {})
    args["body"]["task"]["colour"] = "red"
    with pytest.raises(WorkflowError) as raised:
        await tasks_stack.connectors.call(TASKS_CREATE, args, project_id=PROJECT)
    assert raised.value.payload["code"] == 400


async def test_tasks_delete_removes_the_task_and_then_is_http_404(tasks_stack: Stack) -> None:
    created = await tasks_stack.connectors.call(TASKS_CREATE, task_args("gone", {}), project_id=PROJECT)
    assert (
        await tasks_stack.connectors.call(TASKS_DELETE, {"name": created["name"]}, project_id=PROJECT) == {}
    )
    with pytest.raises(WorkflowError) as raised:
        await tasks_stack.connectors.call(TASKS_DELETE, {"name": created["name"]}, project_id=PROJECT)
    assert raised.value.payload["code"] == 404
    assert raised.value.payload["body"]["error"]["status"] == "NOT_FOUND"


async def test_access_string_returns_the_latest_version_by_default(secrets_stack: Stack) -> None:
    value = await secrets_stack.connectors.call(
        SECRET_ACCESS_STRING, {"secret_id": "payment-api-key"}, project_id=PROJECT
    )
    assert value == "s3cr3t-key"
    first = await secrets_stack.connectors.call(
        SECRET_ACCESS_STRING,
        {"secret_id": "payment-api-key", "version": "1", "project_id": PROJECT},
        project_id="other",
    )
    assert first == "old-key"


async def test_access_string_of_a_missing_secret_is_http_404(secrets_stack: Stack) -> None:
    with pytest.raises(WorkflowError) as raised:
        await secrets_stack.connectors.call(SECRET_ACCESS_STRING, {"secret_id": "nope"}, project_id=PROJECT)
    assert raised.value.payload["code"] == 404
    assert raised.value.tags == ["HttpError"]


async def test_pubsub_publish_returns_message_ids() -> None:
    if not has_module("localcloud.pubsub.server"):
        pytest.skip("the Pub/Sub emulator (localcloud.pubsub) is not there yet")
    ctx, started = await start_stack("pubsub")
    import grpc
    from google.pubsub_v1.services.publisher import PublisherAsyncClient
    from google.pubsub_v1.services.publisher.transports import PublisherGrpcAsyncIOTransport

    client = PublisherAsyncClient(
        transport=PublisherGrpcAsyncIOTransport(channel=grpc.aio.insecure_channel(ctx.config.pubsub))
    )
    topic = f"projects/{PROJECT}/topics/saga-results"
    await client.create_topic(name=topic)
    connectors = Connectors(ctx.config)
    try:
        data = base64.b64encode(b'{"ok":true}').decode()
        result = await connectors.call(
            PUBSUB_PUBLISH,
            {"topic": topic, "body": {"messages": [{"data": data, "attributes": {"k": "v"}}]}},
            project_id=PROJECT,
        )
        assert len(result["messageIds"]) == 1
        with pytest.raises(WorkflowError) as raised:
            await connectors.call(
                PUBSUB_PUBLISH,
                {"topic": topic + "-missing", "body": {"messages": [{"data": data}]}},
                project_id=PROJECT,
            )
        assert raised.value.payload["code"] == 404
    finally:
        await connectors.close()
        await client.transport.close()
        for service in reversed(started):
            await service.stop()


async def test_connector_timeout_becomes_a_timeout_error() -> None:
    # Nothing listens on this address; a tiny connector_params.timeout must bound the call.
    connectors = Connectors(LocalCloudConfig.from_env({"SECRET_MANAGER_EMULATOR_HOST": "127.0.0.1:9"}))
    try:
        with pytest.raises(WorkflowError) as raised:
            await connectors.call(
                SECRET_ACCESS_STRING,
                {"secret_id": "x"},
                project_id=PROJECT,
                connector_params={"timeout": 0.2},
            )
        assert raised.value.tags in (["TimeoutError"], ["HttpError"])
    finally:
        await connectors.close()
