from __future__ import annotations

import asyncio
import os
import sys

import grpc
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcAsyncIOTransport


async def test_module_serves_cloud_tasks_alone_and_prints_a_ready_line() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "localcloud.tasks",
        "127.0.0.1:0",
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=30)).decode()
        assert line.startswith("tasks ready: 127.0.0.1:")
        address = line.split(": ", 1)[1].strip()
        async with grpc.aio.insecure_channel(address) as channel:
            client = tasks_v2.CloudTasksAsyncClient(transport=CloudTasksGrpcAsyncIOTransport(channel=channel))
            queue = await client.create_queue(
                parent="projects/p/locations/l", queue=tasks_v2.Queue(name="projects/p/locations/l/queues/q")
            )
            assert queue.state == tasks_v2.Queue.State.RUNNING
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), timeout=10) == 0
