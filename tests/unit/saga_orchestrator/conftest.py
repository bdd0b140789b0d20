from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contract.cloud import LocalCloud
from tests.support.http import RecordingHttpServer


@pytest.fixture
def http_server() -> Iterator[RecordingHttpServer]:
    with RecordingHttpServer() as server:
        yield server


@pytest.fixture
def local_cloud() -> Iterator[LocalCloud]:
    cloud = LocalCloud()
    yield cloud
    cloud.close()
