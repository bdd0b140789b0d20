from __future__ import annotations

import asyncio
import importlib
import threading
from collections.abc import Iterator

import pytest

from localcloud.config import LocalCloudConfig
from localcloud.runtime import Context
from tests.support.http import RecordingHttpServer


@pytest.fixture
def emulators_in_thread() -> Iterator[dict[str, str]]:
    """The Cloud Tasks, Secret Manager and Workflows emulators on free ports, on an event loop in a thread,
    so that the synchronous clients the runner uses can call them from the test."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    ctx = Context(
        config=LocalCloudConfig.from_env(
            {
                "CLOUD_TASKS_EMULATOR_HOST": "127.0.0.1:0",
                "SECRET_MANAGER_EMULATOR_HOST": "127.0.0.1:0",
                "WORKFLOWS_EMULATOR_HOST": "127.0.0.1:0",
                "WORKFLOWS_HTTP_HOST": "127.0.0.1:0",
            }
        )
    )
    services = []
    try:
        for name in (
            "localcloud.tasks.server",
            "localcloud.secretmanager.server",
            "localcloud.workflows.service.server",
        ):
            module = importlib.import_module(name)
            services.append(asyncio.run_coroutine_threadsafe(module.start(ctx), loop).result(timeout=10))
        yield {service.name: service.address for service in services}
    finally:
        for service in services:
            asyncio.run_coroutine_threadsafe(service.stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@pytest.fixture
def http_server() -> Iterator[RecordingHttpServer]:
    with RecordingHttpServer() as server:
        yield server
