"""Fixtures for the Cloud Tasks emulator's tests: emulators on the real async client, recording targets
(one on the wall clock, one on the test's manual clock), and helpers that step a dispatcher through its
wake-ups on a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import grpc
import pytest
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcAsyncIOTransport

from localcloud.auth import TokenAuthority
from localcloud.clock import Clock, ManualClock, SystemClock
from localcloud.config import LocalCloudConfig
from localcloud.runtime import Context
from localcloud.tasks.dispatcher import Dispatcher
from localcloud.tasks.server import CloudTasksService, start
from tests.support.eventually import eventually_async
from tests.support.http import RecordingHttpServer

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
def target() -> Iterator[RecordingHttpServer]:
    with RecordingHttpServer() as server:
        yield server


@pytest.fixture
def manual_target(manual_clock: ManualClock) -> Iterator[RecordingHttpServer]:
    with RecordingHttpServer(clock=manual_clock) as server:
        yield server


def settled(dispatcher: Dispatcher, clock: ManualClock) -> bool:
    """No attempt in flight and the dispatcher asleep on ``clock`` (or waiting for an event)."""
    if dispatcher.attempts_in_flight or not dispatcher.idle:
        return False
    if dispatcher.sleeping_until is None:
        return True
    deadline = clock.next_deadline()
    return deadline is not None and abs(deadline - dispatcher.sleeping_until) < 1e-6


async def settle(dispatcher: Dispatcher, clock: ManualClock) -> None:
    await eventually_async(lambda: settled(dispatcher, clock), what="the dispatcher to settle")


async def advance_to_next_due(dispatcher: Dispatcher, clock: ManualClock) -> float:
    """Let the dispatcher settle, then move ``clock`` exactly to its next wake-up; returns the step."""
    await settle(dispatcher, clock)
    if dispatcher.sleeping_until is None:
        raise AssertionError("the dispatcher has nothing scheduled")
    step = dispatcher.sleeping_until - clock.now()
    await clock.advance(step)
    return step
