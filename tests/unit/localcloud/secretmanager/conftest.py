from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from google.cloud import secretmanager
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
    SecretManagerServiceGrpcAsyncIOTransport,
)

from localcloud.auth import TokenAuthority
from localcloud.config import LocalCloudConfig
from localcloud.runtime import Context
from localcloud.secretmanager.server import SecretManagerService, start

# Secret Manager never signs anything; a small key keeps start-up cheap.
_AUTHORITY = TokenAuthority(key_size=1024)


@pytest.fixture
async def secret_service() -> AsyncIterator[SecretManagerService]:
    config = LocalCloudConfig.from_env({"SECRET_MANAGER_EMULATOR_HOST": "127.0.0.1:0"})
    service = await start(Context(config=config, authority=_AUTHORITY))
    yield service
    await service.stop()


@pytest.fixture
async def client(
    secret_service: SecretManagerService,
) -> AsyncIterator[secretmanager.SecretManagerServiceAsyncClient]:
    channel = grpc.aio.insecure_channel(secret_service.address)
    yield secretmanager.SecretManagerServiceAsyncClient(
        transport=SecretManagerServiceGrpcAsyncIOTransport(channel=channel)
    )
    await channel.close()
