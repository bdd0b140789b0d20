"""Token checks against the local cloud's metadata server: real tokens, real certificates over HTTP."""

from __future__ import annotations

import time

import pytest
from aiohttp import web
from saga_participant import TokenError, TokenPolicy, TokenVerifier

from localcloud.auth import TokenAuthority
from localcloud.clock import ManualClock
from tests.participant.servers import ORCHESTRATOR, BackgroundLoop, Metadata

AUDIENCE = "https://flights.example.com"


@pytest.fixture
def verifier(metadata: Metadata) -> TokenVerifier:
    policy = TokenPolicy(
        audiences=(AUDIENCE,), service_accounts=(ORCHESTRATOR,), certs_url=metadata.certs_url
    )
    return TokenVerifier(policy)


def refusal(verifier: TokenVerifier, header: str | None) -> tuple[int, str]:
    with pytest.raises(TokenError) as refused:
        verifier.verify_header(header)
    return refused.value.status, refused.value.message


def test_the_orchestrators_token_for_this_audience_is_accepted(
    verifier: TokenVerifier, metadata: Metadata
) -> None:
    claims = verifier.verify_header("Bearer " + metadata.token(AUDIENCE))
    assert claims["email"] == ORCHESTRATOR and claims["aud"] == AUDIENCE


def test_missing_malformed_and_misaddressed_tokens_are_refused(
    verifier: TokenVerifier, metadata: Metadata
) -> None:
    assert refusal(verifier, None)[0] == 401
    assert refusal(verifier, "Basic dXNlcjpwYXNz")[0] == 401
    assert refusal(verifier, "Bearer not-a-jwt")[0] == 401
    status, message = refusal(verifier, "Bearer " + metadata.token("https://hotels.example.com"))
    assert status == 401 and "audience" in message.lower()


def test_a_token_of_another_service_account_is_forbidden(verifier: TokenVerifier, metadata: Metadata) -> None:
    status, message = refusal(
        verifier, "Bearer " + metadata.token(AUDIENCE, "intruder@x.iam.gserviceaccount.com")
    )
    assert status == 403 and "intruder@" in message


def test_an_expired_token_and_a_foreign_signature_are_refused(
    verifier: TokenVerifier, metadata: Metadata, background: BackgroundLoop
) -> None:
    past = TokenAuthority(clock=ManualClock(start=time.time() - 2 * 3600))
    assert refusal(verifier, "Bearer " + past.mint_id_token(AUDIENCE, ORCHESTRATOR))[0] == 401
    stranger = TokenAuthority()  # its key is not published by the metadata server
    assert refusal(verifier, "Bearer " + stranger.mint_id_token(AUDIENCE, ORCHESTRATOR))[0] == 401


def test_certificates_are_fetched_once_and_again_after_a_key_rotation(background: BackgroundLoop) -> None:
    signing = [TokenAuthority()]

    async def certs(request: web.Request) -> web.Response:
        return web.json_response(signing[0].certificates(), headers={"Cache-Control": "max-age=3600"})

    app = web.Application()
    app.router.add_get("/certs", certs)
    origin, stop = background.serve(app)
    policy = TokenPolicy(audiences=(AUDIENCE,), service_accounts=(ORCHESTRATOR,), certs_url=f"{origin}/certs")
    verifier = TokenVerifier(policy, refetch_interval=0.0)
    try:
        for _ in range(3):
            verifier.verify(signing[0].mint_id_token(AUDIENCE, ORCHESTRATOR))
        assert verifier.fetches == 1
        signing[0] = TokenAuthority()  # a new key id: fetched at once, not after the hour of max-age
        verifier.verify(signing[0].mint_id_token(AUDIENCE, ORCHESTRATOR))
        assert verifier.fetches == 2
    finally:
        stop()


def test_unreachable_certificates_answer_503(metadata: Metadata) -> None:
    policy = TokenPolicy(audiences=(AUDIENCE,), any_caller=True, certs_url="http://127.0.0.1:9/certs")
    status, _ = refusal(TokenVerifier(policy), "Bearer " + metadata.token(AUDIENCE))
    assert status == 503


def test_a_policy_names_the_orchestrator_or_says_any_caller() -> None:
    with pytest.raises(ValueError, match="service_accounts"):
        TokenPolicy(audiences=(AUDIENCE,))
