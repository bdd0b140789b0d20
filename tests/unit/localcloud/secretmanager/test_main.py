from __future__ import annotations

import asyncio
import os
import sys

import grpc
from google.cloud import secretmanager
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
    SecretManagerServiceGrpcAsyncIOTransport,
)


async def test_module_serves_secret_manager_alone_from_the_env_address() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "localcloud.secretmanager",
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "SECRET_MANAGER_EMULATOR_HOST": "127.0.0.1:0"},
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=30)).decode()
        assert line.startswith("secretmanager ready: 127.0.0.1:")
        address = line.split(": ", 1)[1].strip()
        async with grpc.aio.insecure_channel(address) as channel:
            client = secretmanager.SecretManagerServiceAsyncClient(
                transport=SecretManagerServiceGrpcAsyncIOTransport(channel=channel)
            )
            secret = await client.create_secret(
                parent="projects/p", secret_id="s", secret=secretmanager.Secret()
            )
            assert secret.name == "projects/p/secrets/s"
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), timeout=10) == 0
