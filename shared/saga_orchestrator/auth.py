"""Google credentials for outgoing calls: OIDC ID tokens for participants, OAuth2 access tokens for
Workflows callbacks. Both come from google-auth (the metadata server on Google Cloud, or whatever
``GCE_METADATA_HOST`` / ``GOOGLE_APPLICATION_CREDENTIALS`` point at), so the same code runs locally.
Implements ``ports.TokenSource`` (re-exported here).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from saga_orchestrator.ports import TokenSource

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"

__all__ = ["CLOUD_PLATFORM_SCOPE", "GoogleTokenSource", "TokenSource"]


# A cached ID token is replaced when it has less than this left (seconds).
ID_TOKEN_REFRESH_MARGIN_SECONDS = 300


class GoogleTokenSource:
    """Thread-safe. ID tokens are cached per audience until 5 minutes before their ``exp``; the
    access-token credentials are kept and refreshed when expired."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._credentials: Any = None
        self._id_tokens: dict[str, tuple[str, float]] = {}

    def id_token(self, audience: str) -> str:
        import google.auth.jwt
        import google.auth.transport.requests
        import google.oauth2.id_token

        with self._lock:
            cached = self._id_tokens.get(audience)
        if cached and cached[1] - ID_TOKEN_REFRESH_MARGIN_SECONDS > time.time():
            return cached[0]
        token: str = google.oauth2.id_token.fetch_id_token(google.auth.transport.requests.Request(), audience)
        try:
            expires = float(google.auth.jwt.decode(token, verify=False).get("exp", 0))
        except (ValueError, TypeError):
            expires = 0.0
        with self._lock:
            self._id_tokens[audience] = (token, expires)
        return token

    def access_token(self) -> str:
        import google.auth
        import google.auth.transport.requests

        with self._lock:
            if self._credentials is None:
                self._credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
            if not self._credentials.valid:
                self._credentials.refresh(google.auth.transport.requests.Request())
            return str(self._credentials.token)
