"""OIDC ID token verification: the orchestrator signs every call with a Google-signed ID token.

``TokenVerifier.verify`` checks what ``google.oauth2.id_token.verify_token`` checks (an RS256 signature by
a key of ``certs_url``, ``aud``, ``iat``/``exp`` with google-auth's clock skew) and also the issuer and
the caller: ``email`` must be one of ``service_accounts`` with ``email_verified`` true. Unlike
``verify_token`` it does not fetch the certificates for every call:

- certificates are kept for the ``max-age`` of their ``Cache-Control`` (Google sends one), else
  ``DEFAULT_CERTS_TTL_SECONDS``, and fetched again at once for a key id it does not hold (rotation), at
  most once per ``refetch_interval`` seconds;
- a token that verified is remembered until its ``exp`` (at most ``max_tokens`` of them). A remembered
  token stays accepted until it expires even if its key is withdrawn meanwhile (ID tokens live an hour).

Thread-safe. ``certs_url`` is Google's in production; locally, the local cloud's metadata server
publishes its own at ``http://<GCE_METADATA_HOST>/oauth2/v1/certs``.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import google.auth.exceptions
import google.auth.jwt

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
DEFAULT_CERTS_TTL_SECONDS = 300.0
DEFAULT_REFETCH_INTERVAL_SECONDS = 1.0
DEFAULT_MAX_TOKENS = 1024
FETCH_TIMEOUT_SECONDS = 5.0
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*(\d+)", re.IGNORECASE)


class TokenError(Exception):
    """``status``: 401 for a missing or bad token, 403 for a good token of a caller not allowed, 503
    when the certificates cannot be fetched (the orchestrator retries)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class TokenPolicy:
    """Who may call. ``audiences``: the participant's origins as the orchestrator addresses it
    (``https://flights.example.com``). ``service_accounts``: the orchestrator's service account email(s);
    empty only with ``any_caller=True`` (any Google-signed token for the audience, e.g. for a demo)."""

    audiences: tuple[str, ...]
    service_accounts: tuple[str, ...] = ()
    issuers: tuple[str, ...] = GOOGLE_ISSUERS
    certs_url: str = GOOGLE_CERTS_URL
    any_caller: bool = False

    def __post_init__(self) -> None:
        problems = []
        if not self.audiences:
            problems.append("audiences: at least one origin is required")
        if not self.service_accounts and not self.any_caller:
            problems.append("service_accounts: name the orchestrator's service account (or any_caller=True)")
        if problems:
            raise ValueError("; ".join(problems))


def max_age_of(cache_control: str) -> float | None:
    match = _MAX_AGE.search(cache_control or "")
    return float(match[1]) if match else None


def fetch_certificates(url: str) -> tuple[dict[str, str], float | None]:
    """Key id -> PEM certificate, and the ``max-age`` the server allows; raises ``TokenError`` (503)."""
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_SECONDS) as response:
            body = json.loads(response.read())
            max_age = max_age_of(response.headers.get("Cache-Control", ""))
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise TokenError(
            503, f"cannot fetch the token certificates: {type(error).__name__}: {error}"
        ) from None
    if not isinstance(body, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in body.items()
    ):
        raise TokenError(503, "cannot fetch the token certificates: not a key id -> PEM map")
    return body, max_age


class TokenVerifier:
    """``clock`` gives epoch seconds (certificate TTL, expiry of remembered tokens); ``fetch`` gets the
    certificates (``fetch_certificates`` by default)."""

    def __init__(
        self,
        policy: TokenPolicy,
        *,
        clock: Callable[[], float] = time.time,
        fetch: Callable[[str], tuple[dict[str, str], float | None]] = fetch_certificates,
        refetch_interval: float = DEFAULT_REFETCH_INTERVAL_SECONDS,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._fetch = fetch
        self._refetch_interval = refetch_interval
        self._max_tokens = max_tokens
        self._lock = threading.Lock()
        self._fetch_lock = threading.Lock()
        self._certs: dict[str, str] = {}
        self._certs_until = 0.0
        self._fetched_at: float | None = None
        self._verified: dict[str, tuple[Mapping[str, Any], float]] = {}
        self.fetches = 0

    @property
    def remembered_tokens(self) -> int:
        """How many verified tokens are remembered (at most ``max_tokens``)."""
        with self._lock:
            return len(self._verified)

    def verify_header(self, authorization: str | None) -> Mapping[str, Any]:
        """The claims of ``Authorization: Bearer <token>``; raises ``TokenError``."""
        value = (authorization or "").strip()
        if not value.startswith("Bearer ") or not value[7:].strip():
            raise TokenError(401, "an OIDC ID token is required (Authorization: Bearer ...)")
        return self.verify(value[7:].strip())

    def remembered(self, token: str) -> Mapping[str, Any] | None:
        """The claims of a token that verified and has not expired (no I/O), else None; raises
        ``TokenError`` for a token that verified once and has expired since (by ``clock``)."""
        with self._lock:
            entry = self._verified.get(token)
            if entry is None:
                return None
            if self._clock() < entry[1]:
                return entry[0]
            del self._verified[token]
        raise TokenError(401, "invalid ID token: Token expired")

    def verify(self, token: str) -> Mapping[str, Any]:
        claims = self.remembered(token)
        if claims is not None:
            return claims
        try:
            header = google.auth.jwt.decode_header(token)
        except (ValueError, TypeError) as error:
            raise TokenError(401, f"invalid ID token: {error}") from None
        key_id = header.get("kid") if isinstance(header, dict) else None
        certs = self._certificates(key_id if isinstance(key_id, str) else None)
        try:
            claims = google.auth.jwt.decode(token, certs=certs, audience=list(self.policy.audiences))
        except (ValueError, TypeError, google.auth.exceptions.GoogleAuthError) as error:
            raise TokenError(401, f"invalid ID token: {error}") from None
        self._check_caller(claims)
        expires = claims.get("exp")
        if isinstance(expires, int | float) and not isinstance(expires, bool):
            self._remember(token, claims, float(expires))
        return claims

    def _check_caller(self, claims: Mapping[str, Any]) -> None:
        if claims.get("iss") not in self.policy.issuers:
            raise TokenError(401, f"invalid ID token: issuer {claims.get('iss')!r} is not accepted")
        if self.policy.any_caller:
            return
        email = claims.get("email")
        if claims.get("email_verified") is not True or email not in self.policy.service_accounts:
            raise TokenError(403, f"the caller {email!r} may not call this participant")

    def _remember(self, token: str, claims: Mapping[str, Any], expires: float) -> None:
        with self._lock:
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

    def _certificates(self, key_id: str | None) -> dict[str, str]:
        # The fetch has a lock of its own: ``remembered`` (the event loop's fast path) never waits on I/O.
        with self._lock:
            if self._usable(self._clock(), key_id):
                return self._certs
        with self._fetch_lock:
            with self._lock:
                if self._usable(self._clock(), key_id):
                    return self._certs
            certs, max_age = self._fetch(self.policy.certs_url)
            with self._lock:
                now = self._clock()
                self.fetches += 1
                self._certs = certs
                self._fetched_at = now
                self._certs_until = now + (max_age if max_age is not None else DEFAULT_CERTS_TTL_SECONDS)
            return certs
