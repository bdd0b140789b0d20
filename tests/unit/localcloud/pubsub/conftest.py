"""Fixtures for the Pub/Sub emulator's tests: emulators driven by the real clients (through
``PUBSUB_EMULATOR_HOST``), a recording push endpoint, and helpers to call blocking clients and raw streams."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from google.cloud import pubsub_v1

from localcloud.auth import TokenAuthority
from localcloud.clock import Clock, ManualClock, SystemClock
from localcloud.config import LocalCloudConfig
from localcloud.pubsub.server import PubSubService, start
from localcloud.runtime import Context
from tests.support.http import RecordingHttpServer

PROJECT = "local-project"
T = TypeVar("T")


async def call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking client call off the loop the emulator runs on."""
    return await asyncio.to_thread(function, *args, **kwargs)


async def stop_streaming(future: Any) -> None:
    """Cancel a streaming pull and wait until the subscriber has shut down: ``cancel`` only starts the
    shutdown, and a lease-maintaining thread left running would outlive the test."""
    future.cancel()
    with contextlib.suppress(Exception):
        await call(future.result, 10)


async def requests_from(queue: asyncio.Queue[Any]) -> AsyncIterator[Any]:
    """The request iterator of a raw bidirectional stream: what is put on ``queue``, until ``None``."""
    while True:
        item = await queue.get()
        if item is None:
            return
        yield item


@dataclass
class Local:
    service: PubSubService
    publisher: pubsub_v1.PublisherClient
    subscriber: pubsub_v1.SubscriberClient

    def topic(self, name: str) -> str:
        return f"projects/{PROJECT}/topics/{name}"

    def subscription(self, name: str) -> str:
        return f"projects/{PROJECT}/subscriptions/{name}"


Starter = Callable[..., Awaitable[Local]]


@pytest.fixture(scope="session")
def authority() -> TokenAuthority:
    return TokenAuthority()


@pytest.fixture
async def start_pubsub(authority: TokenAuthority, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Starter]:
    started: list[Local] = []

    async def starter(clock: Clock | None = None) -> Local:
        config = LocalCloudConfig.from_env({"PUBSUB_EMULATOR_HOST": "127.0.0.1:0"})
        service = await start(Context(config=config, clock=clock or SystemClock(), authority=authority))
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", service.address)
        local = Local(service, pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient())
        started.append(local)
        return local

    yield starter
    for local in started:
        local.subscriber.close()
        await local.service.stop()


@pytest.fixture
async def live(start_pubsub: Starter) -> Local:
    return await start_pubsub()


@pytest.fixture
def manual_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def manual(start_pubsub: Starter, manual_clock: ManualClock) -> Local:
    return await start_pubsub(manual_clock)


@pytest.fixture
def endpoint() -> Iterator[RecordingHttpServer]:
    with RecordingHttpServer() as server:
        yield server
