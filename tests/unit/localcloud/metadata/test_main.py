from __future__ import annotations

import asyncio
import os
import sys

import aiohttp


async def test_module_serves_the_metadata_server_alone() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "localcloud.metadata",
        "127.0.0.1:0",
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "LOCALCLOUD_PROJECT": "p-main"},
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=30)).decode()
        assert line.startswith("metadata ready: 127.0.0.1:")
        address = line.split(": ", 1)[1].strip()
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"http://{address}/computeMetadata/v1/project/project-id",
                headers={"Metadata-Flavor": "Google"},
            ) as response,
        ):
            assert await response.text() == "p-main"
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), timeout=10) == 0
