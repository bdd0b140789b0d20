from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.cloud import secretmanager
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
    SecretManagerServiceGrpcTransport,
)
from saga_orchestrator.errors import SecretAccessError
from saga_orchestrator.model import SecretRef
from saga_orchestrator.secrets import SecretReader


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ServerError(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.INTERNAL

    def details(self) -> str:
        return "oops"


class Wire(grpc.UnaryUnaryClientInterceptor):
    """Faults on the wire between the real client and the Secret Manager emulator."""

    def __init__(self) -> None:
        self.fail_next = False
        self.corrupt = False

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        if self.fail_next:
            self.fail_next = False
            raise ServerError()
        call = continuation(details, request)
        if self.corrupt:
            call.result().payload.data_crc32c ^= 1
        return call


class Reader:
    def __init__(self, local_cloud: Any) -> None:
        self.wire = Wire()
        channel = grpc.intercept_channel(
            grpc.insecure_channel(local_cloud.env["SECRET_MANAGER_EMULATOR_HOST"]), self.wire
        )
        self.client = secretmanager.SecretManagerServiceClient(
            transport=SecretManagerServiceGrpcTransport(channel=channel)
        )
        self.accesses = 0
        self.clock = Clock()
        self.reader = SecretReader(self._client, "shop", ttl_seconds=60, clock=self.clock)

    def _client(self) -> secretmanager.SecretManagerServiceClient:
        self.accesses += 1
        return self.client


@pytest.fixture
def reader(local_cloud):
    return Reader(local_cloud)


def test_latest_and_pinned_versions_are_read(local_cloud, reader):
    local_cloud.add_secret_version("shop", "api-key", b"v1")
    local_cloud.add_secret_version("shop", "api-key", b"v2")
    assert reader.reader.get(SecretRef("api-key")) == "v2"
    assert reader.reader.get(SecretRef("api-key", "1")) == "v1"


def test_values_are_cached_for_the_ttl_then_read_again(local_cloud, reader):
    local_cloud.add_secret_version("shop", "api-key", b"v1")
    assert reader.reader.get(SecretRef("api-key")) == "v1"
    local_cloud.add_secret_version("shop", "api-key", b"v2")
    reader.clock.now += 59
    assert reader.reader.get(SecretRef("api-key")) == "v1"
    assert reader.accesses == 1
    reader.clock.now += 2
    assert reader.reader.get(SecretRef("api-key")) == "v2"
    assert reader.accesses == 2


def test_a_missing_secret_is_not_retryable(reader):
    with pytest.raises(SecretAccessError) as caught:
        reader.reader.get(SecretRef("nope"))
    assert caught.value.retryable is False
    assert caught.value.name == "projects/shop/secrets/nope/versions/latest"


def test_a_server_error_is_retryable(local_cloud, reader):
    # (UNAVAILABLE is retried inside the client already; INTERNAL is not.)
    local_cloud.add_secret_version("shop", "api-key", b"v1")
    reader.wire.fail_next = True
    with pytest.raises(SecretAccessError) as caught:
        reader.reader.get(SecretRef("api-key"))
    assert caught.value.retryable is True
    assert reader.reader.get(SecretRef("api-key")) == "v1"


def test_a_checksum_mismatch_is_refused_and_the_value_never_appears_in_the_error(local_cloud, reader):
    local_cloud.add_secret_version("shop", "api-key", b"very-secret-value")
    reader.wire.corrupt = True
    with pytest.raises(SecretAccessError) as caught:
        reader.reader.get(SecretRef("api-key"))
    assert "CRC32C" in str(caught.value)
    assert "very-secret-value" not in str(caught.value)
