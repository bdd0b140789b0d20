"""The in-process channel answers exactly as the server does over the network: the same responses, the
same statuses and details, the same exceptions through the generated clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.api_core import exceptions as gexc
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcAsyncIOTransport
from google.protobuf import wrappers_pb2

from localcloud import _grpc
from localcloud.config import LocalCloudConfig
from localcloud.runtime import Context
from localcloud.tasks.server import start as start_tasks

SERVICE = "test.Echo"
StringValue = wrappers_pb2.StringValue


class Echo:
    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.metadata: list[tuple[str, str]] = []

    async def Say(self, request: Any, context: Any) -> Any:
        self.metadata = list(context.invocation_metadata())
        return StringValue(value=request.value.upper())

    async def Refuse(self, request: Any, context: Any) -> Any:
        raise gexc.FailedPrecondition(f"cannot say {request.value!r}")

    async def Crash(self, request: Any, context: Any) -> Any:
        raise RuntimeError("boom")

    async def Abort(self, request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down", trailing_metadata=(("k", "v"),))

    async def Wait(self, request: Any, context: Any) -> Any:
        await self.release.wait()
        return request


@pytest.fixture
async def echo() -> AsyncIterator[tuple[grpc.aio.Server, Echo]]:
    api = Echo()
    methods = {
        name: _grpc.unary(getattr(api, name), StringValue, method=f"{SERVICE}/{name}")
        for name in ("Say", "Refuse", "Crash", "Abort", "Wait")
    }
    server = await _grpc.start_server("127.0.0.1:0", [_grpc.service(SERVICE, methods)])
    yield server, api
    api.release.set()
    await server.stop(None)


def _call(channel: grpc.aio.Channel, name: str) -> Any:
    return channel.unary_unary(
        f"/{SERVICE}/{name}",
        request_serializer=StringValue.SerializeToString,
        response_deserializer=StringValue.FromString,
    )


async def _outcome(channel: grpc.aio.Channel, name: str, timeout: float = 5) -> tuple[Any, ...]:
    try:
        response = await _call(channel, name)(StringValue(value="hi"), timeout=timeout)
    except grpc.aio.AioRpcError as error:
        return (error.code(), error.details(), tuple(error.trailing_metadata() or ()))
    return ("ok", response.value)


async def test_a_server_of_this_loop_is_reached_in_process(echo: tuple[grpc.aio.Server, Echo]) -> None:
    server, api = echo
    local = _grpc.channel(f"127.0.0.1:{server.bound_port}")
    assert isinstance(local, _grpc.LocalChannel)
    response = await _call(local, "Say")(StringValue(value="hi"), metadata=(("x-goog-request-params", "a"),))
    assert response.value == "HI"
    assert api.metadata == [("x-goog-request-params", "a")]


async def test_statuses_and_details_match_those_over_the_network(echo: tuple[grpc.aio.Server, Echo]) -> None:
    server, _ = echo
    address = f"127.0.0.1:{server.bound_port}"
    local = _grpc.channel(address)
    async with grpc.aio.insecure_channel(address) as remote:
        for name in ("Say", "Refuse", "Crash"):
            assert await _outcome(local, name) == await _outcome(remote, name), name
        local_abort, remote_abort = await _outcome(local, "Abort"), await _outcome(remote, "Abort")
        assert local_abort[:2] == remote_abort[:2] == (grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down")
        assert ("k", "v") in local_abort[2] and ("k", "v") in remote_abort[2]
        local_late, remote_late = await _outcome(local, "Wait", 0.05), await _outcome(remote, "Wait", 0.05)
        assert local_late[0] == remote_late[0] == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_a_stopped_server_is_reached_over_the_network_again(echo: tuple[grpc.aio.Server, Echo]) -> None:
    server, _ = echo
    address = f"127.0.0.1:{server.bound_port}"
    await server.stop(None)
    channel = _grpc.channel(address)
    assert not isinstance(channel, _grpc.LocalChannel)
    await channel.close()


async def test_another_event_loop_gets_a_real_channel(echo: tuple[grpc.aio.Server, Echo]) -> None:
    server, _ = echo
    address = f"127.0.0.1:{server.bound_port}"

    def elsewhere() -> str:
        async def make() -> str:
            channel = _grpc.channel(address)
            kind = type(channel).__name__
            await channel.close()
            return kind

        return asyncio.run(make())

    assert await asyncio.to_thread(elsewhere) != "LocalChannel"


async def test_the_generated_tasks_client_works_through_the_in_process_channel() -> None:
    config = LocalCloudConfig.from_env({"CLOUD_TASKS_EMULATOR_HOST": "127.0.0.1:0"})
    service = await start_tasks(Context(config=config))
    channel = _grpc.channel(service.address)
    try:
        assert isinstance(channel, _grpc.LocalChannel)
        client = tasks_v2.CloudTasksAsyncClient(transport=CloudTasksGrpcAsyncIOTransport(channel=channel))
        parent = "projects/local-project/locations/us-central1"
        queue = await client.create_queue(parent=parent, queue=tasks_v2.Queue(name=f"{parent}/queues/q"))
        assert queue.state == tasks_v2.Queue.State.RUNNING
        with pytest.raises(gexc.NotFound, match="Queue does not exist"):
            await client.get_queue(name=f"{parent}/queues/missing")
        with pytest.raises(gexc.AlreadyExists):
            await client.create_queue(parent=parent, queue=tasks_v2.Queue(name=f"{parent}/queues/q"))
    finally:
        await channel.close()
        await service.stop()
