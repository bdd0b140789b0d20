"""The Pub/Sub, Cloud Tasks and Secret Manager emulators on free ports, on an event loop in a thread, so the
synchronous clients (``transport="rest"``, ``requests``) can call their REST surfaces from the tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials

from localcloud.auth import TokenAuthority
from localcloud.config import LocalCloudConfig
from localcloud.pubsub import server as pubsub_server
from localcloud.runtime import Context
from localcloud.secretmanager import server as secretmanager_server
from localcloud.tasks import server as tasks_server


@dataclass(frozen=True)
class RestCloud:
    """The ``host:port`` of each emulator's REST surface."""

    pubsub: str
    tasks: str
    secretmanager: str

    @staticmethod
    def client_kwargs(address: str) -> dict[str, Any]:
        """What a GAPIC client takes to use the REST surface at ``address``."""
        return {
            "transport": "rest",
            "client_options": {"api_endpoint": f"http://{address}"},
            "credentials": AnonymousCredentials(),
        }


@pytest.fixture(scope="module")
def rest_cloud() -> Iterator[RestCloud]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    variables = ("PUBSUB_EMULATOR_HOST", "CLOUD_TASKS_EMULATOR_HOST", "SECRET_MANAGER_EMULATOR_HOST")
    config = LocalCloudConfig.from_env(dict.fromkeys(variables, "127.0.0.1:0"))
    ctx = Context(config=config, authority=TokenAuthority(key_size=1024))

    def run(coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=30)

    services: list[Any] = []
    try:
        for module in (pubsub_server, tasks_server, secretmanager_server):
            services.append(run(module.start(ctx)))
        pubsub, tasks, secretmanager = (service.rest_address for service in services)
        yield RestCloud(pubsub=pubsub, tasks=tasks, secretmanager=secretmanager)
    finally:
        for service in services:
            run(service.stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
