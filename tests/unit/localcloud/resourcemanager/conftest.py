from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from google.cloud import resourcemanager_v3
from google.cloud.resourcemanager_v3.services.tag_bindings.transports import TagBindingsGrpcAsyncIOTransport
from google.cloud.resourcemanager_v3.services.tag_keys.transports import TagKeysGrpcAsyncIOTransport
from google.cloud.resourcemanager_v3.services.tag_values.transports import TagValuesGrpcAsyncIOTransport

from localcloud.auth import TokenAuthority
from localcloud.config import LocalCloudConfig
from localcloud.resourcemanager import server as resourcemanager_server
from localcloud.runtime import Context
from localcloud.secretmanager import server as secretmanager_server

# Neither emulator signs anything; a small key keeps start-up cheap.
_AUTHORITY = TokenAuthority(key_size=1024)


@dataclass
class TagClients:
    keys: resourcemanager_v3.TagKeysAsyncClient
    values: resourcemanager_v3.TagValuesAsyncClient
    bindings: resourcemanager_v3.TagBindingsAsyncClient
    secretmanager: str  # the Secret Manager emulator's gRPC address


@pytest.fixture
async def tag_service() -> AsyncIterator[tuple[resourcemanager_server.ResourceManagerService, str]]:
    """The Resource Manager emulator, beside a Secret Manager emulator (whose secrets it binds tags to)."""
    config = LocalCloudConfig.from_env({"SECRET_MANAGER_EMULATOR_HOST": "127.0.0.1:0"})
    secrets = await secretmanager_server.start(Context(config=config, authority=_AUTHORITY))
    config = LocalCloudConfig.from_env({"SECRET_MANAGER_EMULATOR_HOST": secrets.address})
    assert config.resourcemanager.endswith(":0")  # moved beside a Secret Manager not on its default port
    service = await resourcemanager_server.start(Context(config=config, authority=_AUTHORITY))
    yield service, secrets.address
    await service.stop()
    await secrets.stop()


@pytest.fixture
async def tags(
    tag_service: tuple[resourcemanager_server.ResourceManagerService, str],
) -> AsyncIterator[TagClients]:
    service, secretmanager = tag_service
    channel = grpc.aio.insecure_channel(service.address)
    yield TagClients(
        keys=resourcemanager_v3.TagKeysAsyncClient(transport=TagKeysGrpcAsyncIOTransport(channel=channel)),
        values=resourcemanager_v3.TagValuesAsyncClient(
            transport=TagValuesGrpcAsyncIOTransport(channel=channel)
        ),
        bindings=resourcemanager_v3.TagBindingsAsyncClient(
            transport=TagBindingsGrpcAsyncIOTransport(channel=channel)
        ),
        secretmanager=secretmanager,
    )
    await channel.close()
