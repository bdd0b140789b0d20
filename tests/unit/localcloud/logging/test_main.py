from __future__ import annotations

import asyncio
import os
import sys

import aiohttp


async def test_module_serves_the_logging_emulator_alone_and_wants_a_token() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "localcloud.logging",
        "127.0.0.1:0",
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=30)).decode()
        assert line.startswith("logging ready: 127.0.0.1:")
        address = line.split(": ", 1)[1].strip()
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"http://{address}/v2/entries:list", json={"resourceNames": ["projects/p"]}
            ) as response,
        ):
            assert response.status == 401
            assert (await response.json())["error"]["status"] == "UNAUTHENTICATED"
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), timeout=10) == 0
