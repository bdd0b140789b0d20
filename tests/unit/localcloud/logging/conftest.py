from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from localcloud.auth import TokenAuthority
from localcloud.clock import ManualClock
from localcloud.config import LocalCloudConfig
from localcloud.logging.server import LoggingService, start
from localcloud.logging.state import LogStore
from localcloud.runtime import Context

PROJECT = "log-project"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
# Nothing here signs ID tokens; a small key keeps start-up cheap.
AUTHORITY = TokenAuthority(key_size=1024)


@dataclass
class LoggingApi:
    """The emulator over HTTP, as a program calls Google's REST API."""

    service: LoggingService
    session: aiohttp.ClientSession
    token: str

    async def call(self, method: str, body: Any, *, token: str | None = None) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {token or self.token}"} if token != "" else {}
        data = body if isinstance(body, bytes) else None
        async with self.session.post(
            f"http://{self.service.address}/v2/entries:{method}",
            json=None if data is not None else body,
            data=data,
            headers=headers,
        ) as response:
            return response.status, await response.json()

    async def write(self, *entries: dict[str, Any], **request: Any) -> tuple[int, dict[str, Any]]:
        return await self.call("write", {"entries": list(entries), **request})

    async def list(self, **request: Any) -> tuple[int, dict[str, Any]]:
        return await self.call("list", {"resourceNames": [f"projects/{PROJECT}"], **request})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def api(clock: ManualClock) -> AsyncIterator[LoggingApi]:
    config = LocalCloudConfig.from_env({"LOGGING_EMULATOR_HOST": "127.0.0.1:0"})
    service = await start(Context(config=config, clock=clock, authority=AUTHORITY), LogStore(clock))
    token = AUTHORITY.mint_access_token(scopes=(CLOUD_PLATFORM,)).token
    async with aiohttp.ClientSession() as session:
        yield LoggingApi(service, session, token)
    await service.stop()


def entry(payload: dict[str, Any] | str, **fields: Any) -> dict[str, Any]:
    """A LogEntry of the test project's ``app`` log on a Cloud Run revision."""
    body: dict[str, Any] = {
        "logName": f"projects/{PROJECT}/logs/app",
        "resource": {"type": "cloud_run_revision", "labels": {"service_name": "step-executor"}},
        **fields,
    }
    body["textPayload" if isinstance(payload, str) else "jsonPayload"] = payload
    return body
