from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcAsyncIOTransport

from localcloud.auth import TokenAuthority
from localcloud.clock import Clock, ManualClock, SystemClock
from localcloud.config import LocalCloudConfig
from localcloud.runtime import Context
from localcloud.tasks.server import CloudTasksService, start
from localcloud.tasks.testing import RecordingTarget

PARENT = "projects/local-project/locations/us-central1"

Started = tuple[CloudTasksService, tasks_v2.CloudTasksAsyncClient]
Starter = Callable[..., Awaitable[Started]]


@pytest.fixture(scope="session")
def authority() -> TokenAuthority:
    """One key for the whole session: generating an RSA key per test would dominate the run time."""
    return TokenAuthority()


@pytest.fixture
async def start_tasks(authority: TokenAuthority) -> AsyncIterator[Starter]:
    started: list[tuple[CloudTasksService, grpc.aio.Channel]] = []

    async def starter(clock: Clock | None = None, **options: float) -> Started:
        config = LocalCloudConfig.from_env({"CLOUD_TASKS_EMULATOR_HOST": "127.0.0.1:0"})
        service = await start(
            Context(config=config, clock=clock or SystemClock(), authority=authority), **options
        )
        channel = grpc.aio.insecure_channel(service.address)
        started.append((service, channel))
        client = tasks_v2.CloudTasksAsyncClient(transport=CloudTasksGrpcAsyncIOTransport(channel=channel))
        return service, client

    yield starter
    for service, channel in started:
        await channel.close()
        await service.stop()


@pytest.fixture
async def manual_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def live(start_tasks: Starter) -> Started:
    return await start_tasks()


@pytest.fixture
async def manual(start_tasks: Starter, manual_clock: ManualClock) -> Started:
    return await start_tasks(manual_clock)


@pytest.fixture
async def target() -> AsyncIterator[RecordingTarget]:
    server = await RecordingTarget().start()
    yield server
    await server.stop()


@pytest.fixture
async def manual_target(manual_clock: ManualClock) -> AsyncIterator[RecordingTarget]:
    server = await RecordingTarget(clock=manual_clock).start()
    yield server
    await server.stop()
