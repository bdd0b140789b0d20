"""How ``certify`` talks to a participant: one HTTP exchange at a time, recorded for the report, and the
ID tokens it signs with."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

REDACTED = "<redacted>"
METADATA_FLAVOR = {"Metadata-Flavor": "Google"}
DEFAULT_METADATA_HOST = "metadata.google.internal"
WRONG_AUDIENCE = "https://certify.invalid"


@dataclass(frozen=True)
class Exchange:
    """One request and what came back: ``status`` None when no answer came (``error`` says why)."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: Any
    status: int | None = None
    response_headers: Mapping[str, str] = field(default_factory=dict)
    response: Any = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "sent": {
                "method": self.method,
                "url": self.url,
                "headers": dict(self.headers),
                "body": self.body,
            },
            "received": {
                "status": self.status,
                "headers": dict(self.response_headers),
                "body": self.response,
                "error": self.error,
            },
        }


def origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _decode(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return raw.decode("utf-8", "replace")[:2000]


def send(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    body: Any = None,
    secret: frozenset[str] = frozenset(),
    timeout: float = 30.0,
) -> Exchange:
    """Make one call; never raises for HTTP or network trouble. Header names in ``secret`` (and
    ``Authorization``) are recorded as ``<redacted>``."""
    data = None if body is None else json.dumps(body).encode()
    sent = dict(headers)
    if data is not None:
        sent["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=sent, method=method)
    hidden = {name.lower() for name in secret} | {"authorization"}
    shown = {name: (REDACTED if name.lower() in hidden else value) for name, value in sent.items()}
    record = Exchange(method=method, url=url, headers=shown, body=body)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, answer, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, answer, raw = error.code, error.headers, error.read()
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return _with(record, error=f"{type(error).__name__}: {reason}")
    kept = {name: answer[name] for name in ("Retry-After", "Content-Type") if answer.get(name)}
    return _with(record, status=status, response_headers=kept, response=_decode(raw))


def _with(record: Exchange, **changes: Any) -> Exchange:
    return Exchange(**{**record.__dict__, **changes})


class TokenError(Exception):
    pass


class Tokens:
    """ID tokens for the participant's ``audience``: the one read from a file, or minted by a metadata
    server (``GCE_METADATA_HOST`` locally, ``metadata.google.internal`` on Google Cloud), which can also
    mint a validly signed token for the wrong audience."""

    def __init__(self, audience: str, *, token: str | None = None, metadata_host: str | None = None) -> None:
        self.audience = audience
        self._token = token
        self._metadata_host = metadata_host
        self._minted: dict[str, str] = {}

    def good(self) -> str:
        if self._token is not None:
            return self._token
        return self._mint(self.audience)

    def wrong_audience(self) -> str | None:
        """A token for another audience, or None when only a token file was given."""
        return None if self._token is not None else self._mint(WRONG_AUDIENCE)

    def _mint(self, audience: str) -> str:
        if audience in self._minted:
            return self._minted[audience]
        host = self._metadata_host or DEFAULT_METADATA_HOST
        query = urllib.parse.urlencode({"audience": audience, "format": "full"})
        url = f"http://{host}/computeMetadata/v1/instance/service-accounts/default/identity?{query}"
        try:
            with urllib.request.urlopen(
                urllib.request.Request(url, headers=METADATA_FLAVOR), timeout=10
            ) as r:
                token = r.read().decode().strip()
        except (urllib.error.URLError, OSError, UnicodeDecodeError) as error:
            raise TokenError(f"cannot get an ID token from the metadata server {host}: {error}") from None
        self._minted[audience] = token
        return token


def tampered(token: str) -> str:
    """The same token with its signature changed: well-formed, but its signature does not verify."""
    head, _, signature = token.rpartition(".")
    if not signature:
        return token + "x"
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return f"{head}.{flipped}"
