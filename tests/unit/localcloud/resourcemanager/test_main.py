from __future__ import annotations

import asyncio
import os
import sys

import grpc
from google.cloud import resourcemanager_v3
from google.cloud.resourcemanager_v3.services.tag_keys.transports import TagKeysGrpcAsyncIOTransport


async def test_module_serves_resource_manager_alone_from_the_env_address() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "localcloud.resourcemanager",
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "RESOURCE_MANAGER_EMULATOR_HOST": "127.0.0.1:0"},
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=30)).decode()
        assert line.startswith("resourcemanager ready: 127.0.0.1:")
        address = line.split(": ", 1)[1].strip()
        async with grpc.aio.insecure_channel(address) as channel:
            client = resourcemanager_v3.TagKeysAsyncClient(
                transport=TagKeysGrpcAsyncIOTransport(channel=channel)
            )
            operation = await client.create_tag_key(
                tag_key=resourcemanager_v3.TagKey(parent="projects/p", short_name="env")
            )
            key = await operation.result()
            assert key.namespaced_name == "p/env"
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), timeout=10) == 0
