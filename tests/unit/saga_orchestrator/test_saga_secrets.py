from __future__ import annotations

import pytest
from google.api_core import exceptions as gexc
from saga_orchestrator.clients import ClientFactory
from saga_orchestrator.errors import SecretAccessError
from saga_orchestrator.model import SecretRef
from saga_orchestrator.secrets import SecretReader


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def reader_parts(google_apis):
    factory = ClientFactory(google_apis.env())
    clock = Clock()
    reader = SecretReader(factory.secrets(), "shop", ttl_seconds=60, clock=clock)
    yield reader, clock
    factory.close()


def test_latest_and_pinned_versions_are_read(google_apis, reader_parts):
    reader, _ = reader_parts
    google_apis.add_secret_version("shop", "api-key", b"v1")
    google_apis.add_secret_version("shop", "api-key", b"v2")
    assert reader.get(SecretRef("api-key")) == "v2"
    assert reader.get(SecretRef("api-key", "1")) == "v1"


def test_values_are_cached_for_the_ttl_then_read_again(google_apis, reader_parts):
    reader, clock = reader_parts
    google_apis.add_secret_version("shop", "api-key", b"v1")
    assert reader.get(SecretRef("api-key")) == "v1"
    google_apis.add_secret_version("shop", "api-key", b"v2")
    clock.now += 59
    assert reader.get(SecretRef("api-key")) == "v1"
    assert google_apis.state.secret_accesses == 1
    clock.now += 2
    assert reader.get(SecretRef("api-key")) == "v2"
    assert google_apis.state.secret_accesses == 2


def test_a_missing_secret_is_not_retryable(reader_parts):
    reader, _ = reader_parts
    with pytest.raises(SecretAccessError) as caught:
        reader.get(SecretRef("nope"))
    assert caught.value.retryable is False
    assert caught.value.name == "projects/shop/secrets/nope/versions/latest"


def test_a_server_error_is_retryable(google_apis, reader_parts):
    # (UNAVAILABLE is retried inside the client already; INTERNAL is not.)
    reader, _ = reader_parts
    google_apis.add_secret_version("shop", "api-key", b"v1")
    google_apis.fail_next("AccessSecretVersion", gexc.InternalServerError("oops"))
    with pytest.raises(SecretAccessError) as caught:
        reader.get(SecretRef("api-key"))
    assert caught.value.retryable is True


def test_a_checksum_mismatch_is_refused_and_the_value_never_appears_in_the_error(google_apis, reader_parts):
    reader, _ = reader_parts
    google_apis.add_secret_version("shop", "api-key", b"very-secret-value")
    google_apis.state.corrupt_secrets = True
    with pytest.raises(SecretAccessError) as caught:
        reader.get(SecretRef("api-key"))
    assert "CRC32C" in str(caught.value)
    assert "very-secret-value" not in str(caught.value)
