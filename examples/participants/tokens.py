"""OIDC ID token verification for the demo participants: ``saga_participant``'s ``TokenVerifier`` (a
Google-signed token for this service's audience; certificates cached for their ``max-age`` and fetched
again at once for a new key id; verified tokens remembered until their expiry), made awaitable.

The demo accepts any caller the token authority vouches for (``any_caller``): the local stack's Cloud
Tasks and Workflows emulators sign as different service accounts. A real participant names the
orchestrator's service account in ``TokenPolicy.service_accounts``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

from saga_participant.auth import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_REFETCH_INTERVAL_SECONDS,
    TokenError,
    TokenPolicy,
    TokenVerifier,
    max_age_of,
)


class IdTokenVerifier:
    """``verify`` runs the certificate fetch (when one is due) in a worker thread, so the event loop keeps
    serving meanwhile; ``verify_blocking`` is the same check for a caller already off the event loop.
    Safe to share between threads."""

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
        policy = TokenPolicy(audiences=tuple(audiences), certs_url=certs_url, any_caller=True)
        self._verifier = TokenVerifier(
            policy, clock=clock, refetch_interval=refetch_interval, max_tokens=max_tokens
        )

    @property
    def fetches(self) -> int:
        return self._verifier.fetches

    @property
    def _verified(self) -> range:
        # Sized like the remembered tokens: ``tests/unit/examples`` checks the bound with len().
        return range(self._verifier.remembered_tokens)

    async def verify(self, token: str) -> Mapping[str, Any]:
        """The token's claims; raises ``TokenError`` (401 bad token, 503 certificates unavailable)."""
        claims = self._verifier.remembered(token)
        if claims is not None:
            return claims
        return await asyncio.to_thread(self._verifier.verify, token)

    def verify_blocking(self, token: str) -> Mapping[str, Any]:
        """``verify`` for a thread that may block (it may fetch the certificates)."""
        return self._verifier.verify(token)

    async def close(self) -> None:
        """Nothing to release (kept so a caller may close it like any client)."""


__all__ = ["IdTokenVerifier", "TokenError", "max_age_of"]
