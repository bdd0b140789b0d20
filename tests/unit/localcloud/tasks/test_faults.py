"""One-shot CreateTask faults armed through the emulator's (non-Google) faults service."""

from __future__ import annotations

import grpc
import pytest
from google.api_core import exceptions as gexc
from google.api_core.retry_async import AsyncRetry
from google.cloud import tasks_v2
from google.protobuf import struct_pb2

from localcloud.tasks.faults import fault_client
from tests.unit.localcloud.tasks.conftest import PARENT, Started

QUEUE = f"{PARENT}/queues/faulty"
NO_RETRY = AsyncRetry(predicate=lambda error: False)


async def arm(service_address: str, **fields: str) -> None:
    message = struct_pb2.Struct()
    message.update(fields)
    async with grpc.aio.insecure_channel(service_address) as channel:
        await fault_client(channel)(message)


def task(task_id: str) -> tasks_v2.Task:
    request = tasks_v2.HttpRequest(url="http://127.0.0.1:9/x", http_method=tasks_v2.HttpMethod.POST)
    return tasks_v2.Task(name=f"{QUEUE}/tasks/{task_id}", http_request=request)


async def test_a_refused_create_is_permission_denied_once_and_creates_nothing(live: Started) -> None:
    service, client = live
    await client.create_queue(parent=PARENT, queue=tasks_v2.Queue(name=QUEUE))
    await arm(service.address, kind="permission_denied", task_prefix=f"{QUEUE}/tasks/saga-1-")
    await client.create_task(parent=QUEUE, task=task("saga-0-execute"), retry=NO_RETRY)  # no match
    with pytest.raises(gexc.PermissionDenied):
        await client.create_task(parent=QUEUE, task=task("saga-1-execute"), retry=NO_RETRY)
    with pytest.raises(gexc.NotFound):
        await client.get_task(name=f"{QUEUE}/tasks/saga-1-execute")
    created = await client.create_task(parent=QUEUE, task=task("saga-1-execute"), retry=NO_RETRY)
    assert created.name.endswith("saga-1-execute")  # one shot: the next create goes through


async def test_a_lost_answer_creates_the_task_and_a_retry_meets_already_exists(live: Started) -> None:
    service, client = live
    await client.create_queue(parent=PARENT, queue=tasks_v2.Queue(name=QUEUE))
    await arm(service.address, kind="lose_answer", queue=QUEUE)
    with pytest.raises(gexc.ServiceUnavailable):
        await client.create_task(parent=QUEUE, task=task("t-1"), retry=NO_RETRY)
    assert (await client.get_task(name=f"{QUEUE}/tasks/t-1")).name.endswith("t-1")
    with pytest.raises(gexc.AlreadyExists):
        await client.create_task(parent=QUEUE, task=task("t-1"), retry=NO_RETRY)


async def test_a_fault_needs_a_known_kind_and_a_target(live: Started) -> None:
    service, _ = live
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await arm(service.address, kind="explode", queue=QUEUE)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError):
        await arm(service.address, kind="lose_answer")
