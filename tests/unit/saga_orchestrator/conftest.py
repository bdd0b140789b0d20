from __future__ import annotations

from collections.abc import Iterator

import pytest
from saga_orchestrator.testing import FakeGoogleApis, RecordingHttpServer


@pytest.fixture
def http_server() -> Iterator[RecordingHttpServer]:
    server = RecordingHttpServer().start()
    yield server
    server.stop()


@pytest.fixture
def google_apis() -> Iterator[FakeGoogleApis]:
    apis = FakeGoogleApis().start()
    yield apis
    apis.stop()
