"""Many executions parked on ``await_callback`` at once, each released by a real HTTP callback.

Bounded for the normal suite (2,000 executions); the 10,000-execution memory figure is measured the same
way outside the suite."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time
from typing import Any

import aiohttp
import grpc
import pytest
from google.cloud.workflows import executions_v1
from google.cloud.workflows.executions_v1.services.executions.transports import ExecutionsGrpcAsyncIOTransport

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("localcloud.workflows.engine.interpreter") is None,
    reason="the Workflows interpreter (localcloud.workflows.engine.interpreter) is not there yet",
)

EXECUTIONS = 2_000
PARKED = """
main:
  params: [args]
  steps:
    - make:
        call: events.create_callback_endpoint
        args:
          http_callback_method: POST
        result: cb
    - wait:
        call: events.await_callback
        args:
          callback: ${cb}
          timeout: 600
        result: req
    - done:
        return: ${req.http_request.body.n + args.i}
"""


async def test_two_thousand_parked_executions_all_succeed_when_called_back(engine: Any) -> None:
    workflow = await asyncio.to_thread(engine.deploy, PARKED)
    client = executions_v1.ExecutionsAsyncClient(
        transport=ExecutionsGrpcAsyncIOTransport(channel=grpc.aio.insecure_channel(engine.service.address))
    )
    token = engine.token()
    auth = {"Authorization": f"Bearer {token}"}
    limit = asyncio.Semaphore(64)
    deadline = time.monotonic() + 60

    async def start(i: int) -> str:
        async with limit:
            execution = await client.create_execution(
                parent=workflow.name, execution=executions_v1.Execution(argument=json.dumps({"i": i}))
            )
            return execution.name

    async def parked_callback(session: aiohttp.ClientSession, name: str) -> str:
        async with limit:
            while True:
                async with session.get(f"{engine.http}/v1/{name}/callbacks", headers=auth) as response:
                    assert response.status == 200, await response.text()
                    callbacks = (await response.json())["callbacks"]
                if callbacks and callbacks[0]["waiters"] == "1":
                    return f"{engine.http}/v1/{callbacks[0]['name']}"
                assert time.monotonic() < deadline, f"{name} never parked"
                await asyncio.sleep(0.05)

    async def release(session: aiohttp.ClientSession, url: str) -> None:
        async with limit, session.post(url, json={"n": 1}, headers=auth) as response:
            assert response.status == 200, await response.text()

    try:
        names = await asyncio.gather(*(start(i) for i in range(EXECUTIONS)))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
            urls = await asyncio.gather(*(parked_callback(session, n) for n in names))
            assert await _count_active(session, engine) == EXECUTIONS  # all parked at the same time
            await asyncio.gather(*(release(session, u) for u in urls))
            while await _count_active(session, engine):
                assert time.monotonic() < deadline, "executions did not finish after their callbacks"
                await asyncio.sleep(0.05)
        pager = await client.list_executions(
            request={
                "parent": workflow.name,
                "page_size": 1000,
                "view": executions_v1.ExecutionView.FULL,
                "filter": 'state="SUCCEEDED"',
            }
        )
        results = {}
        async for execution in pager:
            results[execution.name] = json.loads(execution.result)
        assert len(results) == EXECUTIONS
        assert sorted(results.values()) == [i + 1 for i in range(EXECUTIONS)]
    finally:
        await client.transport.close()


async def _count_active(session: aiohttp.ClientSession, engine: Any) -> int:
    async with session.get(f"{engine.http}/admin/executions", params={"state": "ACTIVE"}) as response:
        return len((await response.json())["executions"])
