"""What the emulators' REST surfaces share with Google's: the JSON error body and the OAuth 2 access-token
check (https://cloud.google.com/apis/design/errors#http_mapping: ``{"error": {code, message, status}}``;
401 UNAUTHENTICATED without a valid token, 403 PERMISSION_DENIED without an allowed scope)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from aiohttp import web

from localcloud.auth import TokenAuthority

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
MISSING_TOKEN = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or "
    "other valid authentication credential."
)
INVALID_TOKEN = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
    "valid authentication credential."
)
INSUFFICIENT_SCOPES = "Request had insufficient authentication scopes."


def google_error(code: int, status: str, message: str, details: list[Any] | None = None) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return web.json_response({"error": error}, status=code)


def check_token(
    request: web.Request, authority: TokenAuthority, scopes: Collection[str] = (CLOUD_PLATFORM_SCOPE,)
) -> web.Response | None:
    """None when ``request`` carries an access token of ``authority`` with one of ``scopes``, else the
    error answer Google gives."""
    header = request.headers.get("Authorization")
    if not header:
        return google_error(401, "UNAUTHENTICATED", MISSING_TOKEN)
    token = authority.check_authorization_header(header)
    if token is None:
        return google_error(401, "UNAUTHENTICATED", INVALID_TOKEN)
    if not set(scopes).intersection(token.scopes):
        return google_error(403, "PERMISSION_DENIED", INSUFFICIENT_SCOPES)
    return None
