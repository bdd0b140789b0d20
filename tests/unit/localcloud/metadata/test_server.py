"""The metadata emulator through the real google-auth.

google-auth reads ``GCE_METADATA_HOST`` into ``google.auth.compute_engine._metadata._GCE_METADATA_HOST``
when that module is imported, but reads ``GCE_METADATA_IP`` (the ping address) on every call; so these
tests patch the module constant and set the env var with ``monkeypatch``. The google-auth calls are
synchronous (``requests``), so they run in a worker thread while the server runs on the test's loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import google.auth.transport.requests
import pytest
from google.auth import compute_engine, jwt
from google.auth.compute_engine import _metadata
from google.oauth2 import id_token

from localcloud._project import project_number
from localcloud.auth import TokenAuthority
from localcloud.config import LocalCloudConfig
from localcloud.metadata.server import MetadataService, start
from localcloud.runtime import Context

PROJECT = "meta-project"
EMAIL = f"saga-runtime@{PROJECT}.iam.gserviceaccount.com"


@pytest.fixture(scope="module")
def authority() -> TokenAuthority:
    return TokenAuthority()


@pytest.fixture
async def metadata(
    monkeypatch: pytest.MonkeyPatch, authority: TokenAuthority
) -> AsyncIterator[MetadataService]:
    config = LocalCloudConfig.from_env({"GCE_METADATA_HOST": "127.0.0.1:0", "LOCALCLOUD_PROJECT": PROJECT})
    service = await start(Context(config=config, authority=authority))
    monkeypatch.setattr(_metadata, "_GCE_METADATA_HOST", service.address)
    monkeypatch.setenv("GCE_METADATA_IP", service.address)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.delenv("GCE_METADATA_MTLS_MODE", raising=False)
    yield service
    await service.stop()


def _request() -> google.auth.transport.requests.Request:
    return google.auth.transport.requests.Request()


async def test_google_auth_detects_gce_and_refreshes_an_access_token(metadata: MetadataService) -> None:
    def refresh() -> compute_engine.Credentials:
        request = _request()
        assert _metadata.is_on_gce(request)
        credentials = compute_engine.Credentials()
        credentials.refresh(request)
        return credentials

    credentials = await asyncio.to_thread(refresh)
    assert credentials.token is not None and credentials.token.startswith("ya29.")
    assert credentials.service_account_email == EMAIL
    assert credentials.expiry is not None
    assert metadata.authority.check_access_token(credentials.token) is not None


async def test_project_id_comes_from_the_config(metadata: MetadataService) -> None:
    project = await asyncio.to_thread(_metadata.get_project_id, _request())
    assert project == PROJECT


async def test_fetched_id_token_verifies_against_the_published_certificates(
    metadata: MetadataService,
) -> None:
    audience = "https://step-executor.example/run"

    def fetch_and_verify() -> Mapping[str, Any]:
        request = _request()
        token = id_token.fetch_id_token(request, audience)
        return id_token.verify_token(
            token, request, audience=audience, certs_url=f"http://{metadata.address}/oauth2/v1/certs"
        )

    claims = await asyncio.to_thread(fetch_and_verify)
    assert claims["aud"] == audience
    assert claims["email"] == EMAIL
    assert claims["iss"] == "https://accounts.google.com"


async def test_id_token_for_another_audience_fails_verification(metadata: MetadataService) -> None:
    def fetch_and_verify() -> None:
        request = _request()
        token = id_token.fetch_id_token(request, "https://a.example")
        id_token.verify_token(
            token,
            request,
            audience="https://b.example",
            certs_url=f"http://{metadata.address}/oauth2/v1/certs",
        )

    with pytest.raises(ValueError, match="audience"):
        await asyncio.to_thread(fetch_and_verify)


async def _get(service: MetadataService, path: str, **headers: str) -> tuple[int, dict[str, str], str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://{service.address}{path}", headers=headers) as response,
    ):
        return response.status, dict(response.headers), await response.text()


async def test_requests_without_the_flavor_header_are_forbidden(metadata: MetadataService) -> None:
    status, headers, _ = await _get(metadata, "/computeMetadata/v1/project/project-id")
    assert status == 403
    assert headers["Metadata-Flavor"] == "Google"
    status, _, _ = await _get(
        metadata,
        "/computeMetadata/v1/project/project-id",
        **{"Metadata-Flavor": "Google", "X-Forwarded-For": "1.2.3.4"},
    )
    assert status == 403


async def test_identity_without_audience_is_a_bad_request(metadata: MetadataService) -> None:
    status, _, _ = await _get(
        metadata,
        "/computeMetadata/v1/instance/service-accounts/default/identity",
        **{"Metadata-Flavor": "Google"},
    )
    assert status == 400


async def test_identity_with_format_full_is_a_jwt_for_the_audience(metadata: MetadataService) -> None:
    status, _, body = await _get(
        metadata,
        "/computeMetadata/v1/instance/service-accounts/default/identity?audience=https://x.example&format=full",
        **{"Metadata-Flavor": "Google"},
    )
    assert status == 200
    claims = jwt.decode(body, certs=metadata.authority.certificates(), audience="https://x.example")
    assert claims["email"] == EMAIL


async def test_service_account_directory_answers_recursively_as_json(metadata: MetadataService) -> None:
    flavor = {"Metadata-Flavor": "Google"}
    status, headers, body = await _get(
        metadata, "/computeMetadata/v1/instance/service-accounts/default/?recursive=true", **flavor
    )
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == {
        "aliases": ["default"],
        "email": EMAIL,
        "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
    }
    _, _, scopes = await _get(
        metadata, "/computeMetadata/v1/instance/service-accounts/default/scopes", **flavor
    )
    assert scopes == "https://www.googleapis.com/auth/cloud-platform\n"
    _, _, email = await _get(
        metadata, f"/computeMetadata/v1/instance/service-accounts/{EMAIL}/email", **flavor
    )
    assert email == EMAIL
    status, _, _ = await _get(
        metadata,
        "/computeMetadata/v1/instance/service-accounts/nobody@x.iam.gserviceaccount.com/email",
        **flavor,
    )
    assert status == 404
    _, _, number = await _get(metadata, "/computeMetadata/v1/project/numeric-project-id", **flavor)
    assert number.isdigit() and len(number) == 12
    assert number == project_number(PROJECT)  # the number the other emulators read as this project


async def test_token_honours_requested_scopes(metadata: MetadataService) -> None:
    status, _, body = await _get(
        metadata,
        "/computeMetadata/v1/instance/service-accounts/default/token?scopes=a,b",
        **{"Metadata-Flavor": "Google"},
    )
    assert status == 200
    answer = json.loads(body)
    assert answer["token_type"] == "Bearer" and answer["expires_in"] > 0
    record = metadata.authority.check_access_token(answer["access_token"])
    assert record is not None and record.scopes == ("a", "b")


async def test_jwks_page_publishes_the_signing_key(metadata: MetadataService) -> None:
    status, _, body = await _get(metadata, "/oauth2/v3/certs")
    assert status == 200
    keys = json.loads(body)["keys"]
    assert [k["kid"] for k in keys] == [metadata.authority.key_id]
    assert keys[0]["kty"] == "RSA" and keys[0]["e"] == "AQAB"


async def test_token_is_handed_out_again_with_its_remaining_lifetime(metadata: MetadataService) -> None:
    path = "/computeMetadata/v1/instance/service-accounts/default/token"
    answers = []
    for _ in range(2):
        status, _, body = await _get(metadata, path, **{"Metadata-Flavor": "Google"})
        assert status == 200
        answers.append(json.loads(body))
    assert answers[0]["access_token"] == answers[1]["access_token"]
    assert 0 < answers[1]["expires_in"] <= answers[0]["expires_in"] <= 3600


async def test_certificate_pages_say_how_long_they_may_be_cached(metadata: MetadataService) -> None:
    for path in ("/oauth2/v1/certs", "/oauth2/v3/certs"):
        status, headers, _ = await _get(metadata, path)
        assert status == 200
        assert "max-age=3600" in headers["Cache-Control"]
