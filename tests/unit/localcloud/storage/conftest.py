from __future__ import annotations

from collections.abc import Iterator

import pytest
from google.cloud.storage import Bucket, Client

from tests.unit.localcloud.storage.running import RunningStorage


@pytest.fixture
def emulator() -> Iterator[RunningStorage]:
    running = RunningStorage()
    yield running
    running.close()


@pytest.fixture
def client(emulator: RunningStorage) -> Iterator[Client]:
    made = emulator.client()
    yield made
    made.close()


@pytest.fixture
def bucket(client: Client) -> Bucket:
    return client.create_bucket("claims-test")
