"""The Cloud Storage emulator on an event loop of its own thread, for the synchronous
``google-cloud-storage`` client (and the code under test that uses it)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from google.auth.credentials import AnonymousCredentials
from google.cloud.storage import Client

from localcloud.auth import TokenAuthority
from localcloud.config import LocalCloudConfig
from localcloud.runtime import Context
from localcloud.storage.server import StorageService, start
from localcloud.storage.state import StorageState

# Storage signs nothing; one small key for every emulator of the session.
_AUTHORITY = TokenAuthority(key_size=1024)


class RunningStorage:
    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        config = LocalCloudConfig.from_env({"STORAGE_EMULATOR_HOST": "127.0.0.1:0"})
        self.service: StorageService = self._run(start(Context(config=config, authority=_AUTHORITY)))
        self.url = f"http://{self.service.address}"

    @property
    def state(self) -> StorageState:
        return self.service.state

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    def client(self, project: str | None = "test-project") -> Client:
        """The unmodified client, pointed here as ``STORAGE_EMULATOR_HOST`` would point it."""
        return Client(
            project=project, credentials=AnonymousCredentials(), client_options={"api_endpoint": self.url}
        )

    def create_bucket(self, name: str) -> None:
        client = self.client()
        client.create_bucket(name)
        client.close()

    def calls(self, method: str) -> int:
        return int(self.state.calls[method])

    def close(self) -> None:
        self._run(self.service.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
