from __future__ import annotations

from google.auth import jwt

from localcloud.auth import (
    ACCESS_TOKEN_REUSE_MARGIN_SECONDS,
    ID_TOKEN_REUSE_MARGIN_SECONDS,
    TOKEN_LIFETIME_SECONDS,
    TokenAuthority,
)
from localcloud.clock import ManualClock


async def test_an_id_token_is_reused_until_close_to_expiry_then_minted_anew() -> None:
    clock = ManualClock()
    authority = TokenAuthority(clock=clock)
    first = authority.mint_id_token("http://127.0.0.1:9001")
    assert authority.mint_id_token("http://127.0.0.1:9001") == first
    assert authority.mint_id_token("http://127.0.0.1:9002") != first
    await clock.advance(TOKEN_LIFETIME_SECONDS - ID_TOKEN_REUSE_MARGIN_SECONDS + 1)
    renewed = authority.mint_id_token("http://127.0.0.1:9001")
    assert renewed != first
    claims = jwt.decode(
        renewed, certs=authority.certificates(), audience="http://127.0.0.1:9001", verify=False
    )
    assert claims["iat"] == int(clock.now())


def test_an_access_token_is_known_until_it_expires() -> None:
    authority = TokenAuthority()
    token = authority.mint_access_token()
    assert authority.check_authorization_header(f"Bearer {token.token}") == token
    assert authority.check_authorization_header("Bearer ya29.forged") is None
    assert authority.check_authorization_header(None) is None


async def test_an_access_token_is_reused_until_close_to_expiry_and_expired_ones_are_forgotten() -> None:
    clock = ManualClock()
    authority = TokenAuthority(clock=clock)
    first = authority.mint_access_token("a@p.iam.gserviceaccount.com", ("s1",))
    assert authority.mint_access_token("a@p.iam.gserviceaccount.com", ("s1",)) == first
    assert authority.mint_access_token("a@p.iam.gserviceaccount.com", ("s2",)) != first
    assert authority.mint_access_token("b@p.iam.gserviceaccount.com", ("s1",)) != first
    await clock.advance(TOKEN_LIFETIME_SECONDS - ACCESS_TOKEN_REUSE_MARGIN_SECONDS + 1)
    renewed = authority.mint_access_token("a@p.iam.gserviceaccount.com", ("s1",))
    assert renewed != first
    assert authority.check_access_token(first.token) == first  # still valid until it expires
    await clock.advance(ACCESS_TOKEN_REUSE_MARGIN_SECONDS)
    assert authority.check_access_token(first.token) is None
    authority.mint_access_token("c@p.iam.gserviceaccount.com", ("s1",))
    assert first.token not in authority._access_tokens
    assert authority.check_access_token(renewed.token) == renewed
