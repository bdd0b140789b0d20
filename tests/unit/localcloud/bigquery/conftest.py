"""The BigQuery emulator on the test's event loop, and a plain-HTTP caller of its REST API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from localcloud.auth import TokenAuthority
from localcloud.bigquery.server import BigQueryService, start
from localcloud.config import LocalCloudConfig
from localcloud.runtime import Context

PROJECT = "test-project"
# BigQuery signs nothing; one small key for every emulator of the session.
_AUTHORITY = TokenAuthority(key_size=1024)


@dataclass
class Rest:
    service: BigQueryService
    session: aiohttp.ClientSession

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """``(status, JSON body or None)`` of ``METHOD /bigquery/v2/projects/PROJECT{path}``."""
        url = f"{self.service.url}/bigquery/v2/projects/{PROJECT}{path}"
        async with self.session.request(method, url, json=body) as response:
            raw = await response.read()
            return response.status, (await response.json(content_type=None)) if raw else None

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = await self.call(method, path, body)
        assert status in (200, 204), answer
        return answer


@pytest.fixture
async def bigquery() -> AsyncIterator[BigQueryService]:
    config = LocalCloudConfig.from_env({"BIGQUERY_EMULATOR_HOST": "127.0.0.1:0"})
    service = await start(Context(config=config, authority=_AUTHORITY))
    yield service
    await service.stop()


@pytest.fixture
async def rest(bigquery: BigQueryService) -> AsyncIterator[Rest]:
    async with aiohttp.ClientSession() as session:
        yield Rest(bigquery, session)
