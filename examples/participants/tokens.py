"""OIDC ID token verification for the participants, without a certificate fetch per request.

``google.oauth2.id_token.verify_token`` fetches the certificates on every call (a blocking HTTP request,
which here cost more CPU than the rest of a business call). ``IdTokenVerifier`` checks the same things with
``google.auth.jwt.decode`` (RS256 signature by a key of ``certs_url``, ``aud`` one of the audiences,
``iat``/``exp``) but:

- keeps the certificates for the ``max-age`` of their ``Cache-Control`` header (Google's certificate
  endpoint sends one), ``DEFAULT_CERTS_TTL_SECONDS`` without it, and fetches them again at once for a token
  whose key id it does not hold (key rotation), at most once per ``refetch_interval`` seconds;
- remembers a token that verified until its ``exp`` (at most ``max_tokens`` of them), so the step executor's
  cached ID token costs one dictionary lookup per call.

A remembered token stays accepted until its expiry even if its key is withdrawn meanwhile; an ID token's
lifetime is one hour.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import google.auth.exceptions
import google.auth.jwt

DEFAULT_CERTS_TTL_SECONDS = 300.0
DEFAULT_REFETCH_INTERVAL_SECONDS = 1.0
DEFAULT_MAX_TOKENS = 1024
FETCH_TIMEOUT_SECONDS = 5.0
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*(\d+)", re.IGNORECASE)


class TokenError(Exception):
    """``status`` is the HTTP answer: 401 for a bad token, 503 when the certificates cannot be fetched."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def max_age_of(cache_control: str) -> float | None:
    match = _MAX_AGE.search(cache_control or "")
    return float(match[1]) if match else None


class IdTokenVerifier:
    """Use from one event loop. ``clock`` gives epoch seconds (the certificate TTL and the expiry of
    remembered tokens)."""

    def __init__(
        self,
        certs_url: str,
        audiences: tuple[str, ...],
        *,
        clock: Callable[[], float] = time.time,
        refetch_interval: float = DEFAULT_REFETCH_INTERVAL_SECONDS,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        self.certs_url = certs_url
        self.audiences = list(audiences)
        self._clock = clock
        self._refetch_interval = refetch_interval
        self._max_tokens = max_tokens
        self._certs: dict[str, str] = {}
        self._certs_until = 0.0
        self._fetched_at: float | None = None
        self._fetching: asyncio.Lock | None = None
        self._session: aiohttp.ClientSession | None = None
        self._verified: dict[str, tuple[Mapping[str, Any], float]] = {}
        self.fetches = 0

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def verify(self, token: str) -> Mapping[str, Any]:
        """The token's claims; raises ``TokenError``."""
        now = self._clock()
        remembered = self._verified.get(token)
        if remembered is not None:
            claims, expires = remembered
            if now < expires:
                return claims
            del self._verified[token]
            raise TokenError(401, "invalid ID token: Token expired")
        try:
            header = google.auth.jwt.decode_header(token)
        except (ValueError, TypeError) as error:
            raise TokenError(401, f"invalid ID token: {error}") from None
        key_id = header.get("kid") if isinstance(header, dict) else None
        certs = await self._certificates(key_id if isinstance(key_id, str) else None)
        try:
            claims = google.auth.jwt.decode(token, certs=certs, audience=self.audiences)
        except (ValueError, TypeError, google.auth.exceptions.GoogleAuthError) as error:
            raise TokenError(401, f"invalid ID token: {error}") from None
        expires = claims.get("exp")
        if isinstance(expires, int | float) and not isinstance(expires, bool):
            self._remember(token, claims, float(expires))
        return claims

    def _remember(self, token: str, claims: Mapping[str, Any], expires: float) -> None:
        if len(self._verified) >= self._max_tokens:
            now = self._clock()
            for old in [t for t, (_, until) in self._verified.items() if until <= now]:
                del self._verified[old]
            while len(self._verified) >= self._max_tokens:
                del self._verified[next(iter(self._verified))]
        self._verified[token] = (claims, expires)

    def _usable(self, now: float, key_id: str | None) -> bool:
        if now >= self._certs_until:
            return False
        if key_id is None or key_id in self._certs:
            return True
        # An unknown key right after a fetch: the token is refused rather than fetching again.
        return self._fetched_at is not None and now - self._fetched_at < self._refetch_interval

    async def _certificates(self, key_id: str | None) -> dict[str, str]:
        if self._usable(self._clock(), key_id):
            return self._certs
        if self._fetching is None:
            self._fetching = asyncio.Lock()
        async with self._fetching:
            if not self._usable(self._clock(), key_id):
                await self._fetch()
        return self._certs

    async def _fetch(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_SECONDS))
        self.fetches += 1
        try:
            async with self._session.get(self.certs_url) as response:
                if response.status != 200:
                    raise TokenError(503, f"cannot fetch the token certificates: HTTP {response.status}")
                body = await response.json(content_type=None)
                max_age = max_age_of(response.headers.get("Cache-Control", ""))
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise TokenError(
                503, f"cannot fetch the token certificates: {type(error).__name__}: {error}"
            ) from None
        if not isinstance(body, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in body.items()
        ):
            raise TokenError(503, "cannot fetch the token certificates: not a key id -> PEM map")
        now = self._clock()
        self._certs = body
        self._fetched_at = now
        self._certs_until = now + (max_age if max_age is not None else DEFAULT_CERTS_TTL_SECONDS)
