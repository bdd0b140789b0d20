"""The participants' ID token verifier against certificates served over real HTTP: certificates and verified
tokens are cached, key rotation is picked up, expiry still holds."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from examples.participants.tokens import IdTokenVerifier, TokenError, max_age_of
from localcloud.auth import TokenAuthority

AUDIENCE = "http://127.0.0.1:9001"


@dataclass
class CertsServer:
    authorities: list[TokenAuthority]
    cache_control: str = ""
    requests: int = 0
    url: str = ""
    runner: web.AppRunner | None = field(default=None, repr=False)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        certs: dict[str, str] = {}
        for authority in self.authorities:
            certs.update(authority.certificates())
        headers = {"Cache-Control": self.cache_control} if self.cache_control else {}
        return web.json_response(certs, headers=headers)


@pytest.fixture(scope="module")
def signer() -> TokenAuthority:
    return TokenAuthority(key_size=1024)


@pytest.fixture(scope="module")
def rotated() -> TokenAuthority:
    return TokenAuthority(key_size=1024)


@pytest.fixture
async def certs(signer: TokenAuthority) -> AsyncIterator[CertsServer]:
    server = CertsServer([signer])
    app = web.Application()
    app.router.add_get("/oauth2/v1/certs", server.handle)
    server.runner = web.AppRunner(app, access_log=None)
    await server.runner.setup()
    site = web.TCPSite(server.runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{server.runner.addresses[0][1]}/oauth2/v1/certs"
    yield server
    await server.runner.cleanup()


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def verifier(certs: CertsServer) -> AsyncIterator[IdTokenVerifier]:
    checker = IdTokenVerifier(certs.url, (AUDIENCE,))
    yield checker
    await checker.close()


async def test_many_calls_fetch_the_certificates_once(
    verifier: IdTokenVerifier, certs: CertsServer, signer: TokenAuthority
) -> None:
    for email in ("a@p.iam.gserviceaccount.com", "b@p.iam.gserviceaccount.com"):
        token = signer.mint_id_token(AUDIENCE, email)
        for _ in range(3):
            assert (await verifier.verify(token))["email"] == email
    assert certs.requests == 1


async def test_a_token_of_a_new_key_fetches_the_certificates_again(
    certs: CertsServer, signer: TokenAuthority, rotated: TokenAuthority
) -> None:
    clock = Clock()
    checker = IdTokenVerifier(certs.url, (AUDIENCE,), clock=clock, refetch_interval=1.0)
    try:
        await checker.verify(signer.mint_id_token(AUDIENCE))
        certs.authorities.append(rotated)
        clock.now += 1.5
        claims = await checker.verify(rotated.mint_id_token(AUDIENCE, "new@p.iam.gserviceaccount.com"))
        assert claims["email"] == "new@p.iam.gserviceaccount.com"
        assert certs.requests == 2
    finally:
        await checker.close()


async def test_unknown_keys_right_after_a_fetch_are_refused_without_fetching_again(
    certs: CertsServer, signer: TokenAuthority, rotated: TokenAuthority
) -> None:
    checker = IdTokenVerifier(certs.url, (AUDIENCE,), clock=Clock(), refetch_interval=1.0)
    try:
        await checker.verify(signer.mint_id_token(AUDIENCE))
        for _ in range(5):
            with pytest.raises(TokenError) as refused:
                await checker.verify(rotated.mint_id_token(AUDIENCE))
            assert refused.value.status == 401
        assert certs.requests == 1
    finally:
        await checker.close()


async def test_certificates_are_fetched_again_after_their_max_age(
    certs: CertsServer, signer: TokenAuthority
) -> None:
    certs.cache_control = "public, max-age=120, must-revalidate"
    clock = Clock()
    checker = IdTokenVerifier(certs.url, (AUDIENCE,), clock=clock)
    try:
        await checker.verify(signer.mint_id_token(AUDIENCE, "one@p.iam.gserviceaccount.com"))
        clock.now += 119
        await checker.verify(signer.mint_id_token(AUDIENCE, "two@p.iam.gserviceaccount.com"))
        assert certs.requests == 1
        clock.now += 2
        await checker.verify(signer.mint_id_token(AUDIENCE, "three@p.iam.gserviceaccount.com"))
        assert certs.requests == 2
    finally:
        await checker.close()


async def test_a_remembered_token_is_refused_once_it_expires(
    certs: CertsServer, signer: TokenAuthority
) -> None:
    clock = Clock()
    checker = IdTokenVerifier(certs.url, (AUDIENCE,), clock=clock)
    try:
        token = signer.mint_id_token(AUDIENCE, "late@p.iam.gserviceaccount.com")
        await checker.verify(token)
        clock.now += 3601
        with pytest.raises(TokenError, match="expired") as refused:
            await checker.verify(token)
        assert refused.value.status == 401
    finally:
        await checker.close()


async def test_a_token_for_another_audience_is_refused_even_when_its_key_is_known(
    verifier: IdTokenVerifier, signer: TokenAuthority
) -> None:
    await verifier.verify(signer.mint_id_token(AUDIENCE))
    with pytest.raises(TokenError) as refused:
        await verifier.verify(signer.mint_id_token("http://127.0.0.1:9002"))
    assert refused.value.status == 401


async def test_the_memory_of_verified_tokens_is_bounded(certs: CertsServer, signer: TokenAuthority) -> None:
    checker = IdTokenVerifier(certs.url, (AUDIENCE,), max_tokens=3)
    try:
        tokens = [signer.mint_id_token(AUDIENCE, f"u{i}@p.iam.gserviceaccount.com") for i in range(5)]
        for token in tokens:
            await checker.verify(token)
        assert len(checker._verified) == 3
        assert (await checker.verify(tokens[0]))["email"] == "u0@p.iam.gserviceaccount.com"
    finally:
        await checker.close()


def test_max_age_is_read_from_cache_control() -> None:
    assert max_age_of("public, max-age=19470, must-revalidate, no-transform") == 19470.0
    assert max_age_of("no-store") is None
    assert max_age_of("") is None
