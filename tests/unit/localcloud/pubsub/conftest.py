from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from google.cloud import pubsub_v1  # type: ignore[attr-defined]

from localcloud.auth import TokenAuthority
from localcloud.clock import Clock, ManualClock
from localcloud.pubsub.server import PubSubService
from localcloud.pubsub.testing import PushEndpoint, start_local_pubsub

PROJECT = "local-project"


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
        service = await start_local_pubsub(clock, authority)
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
async def endpoint() -> AsyncIterator[PushEndpoint]:
    target = await PushEndpoint().start()
    yield target
    await target.stop()
