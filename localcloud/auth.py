"""The local cloud's token authority: one RSA key that signs every OIDC ID token, and a register of the
OAuth2 access tokens it has handed out.

The metadata emulator mints tokens from it for ``google-auth``; the Cloud Tasks emulator mints the
``oidcToken`` / ``oauthToken`` of HTTP tasks from it; the Workflows engine uses it for ``http.*`` calls
with ``auth`` and to check the access token on callback requests. Its certificates are published by the
metadata emulator in the format of ``https://www.googleapis.com/oauth2/v1/certs`` (key id -> PEM
certificate), so ``google.oauth2.id_token.verify_token(token, request, audience, certs_url=...)`` works
unchanged against them.

ID tokens carry Google's claims (``iss`` https://accounts.google.com, ``aud``, ``azp``, ``sub``,
``email``, ``email_verified``, ``iat``, ``exp``; lifetime one hour).
"""

from __future__ import annotations

import datetime
import secrets
import threading
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

from localcloud.clock import Clock, SystemClock

ISSUER = "https://accounts.google.com"
TOKEN_LIFETIME_SECONDS = 3600
# A minted ID token is handed out again until this close to its expiry (signing costs ~1 ms of CPU, which
# adds up when every Cloud Tasks dispatch and every http.* call with auth asks for one). Access tokens are
# reused the same way, as the GCE metadata server hands out one token (with a shrinking ``expires_in``)
# until shortly before it expires; that also keeps the register of access tokens small.
ID_TOKEN_REUSE_MARGIN_SECONDS = 300
ACCESS_TOKEN_REUSE_MARGIN_SECONDS = 300
DEFAULT_SERVICE_ACCOUNT = "saga-runtime@local-project.iam.gserviceaccount.com"


@dataclass(frozen=True)
class AccessToken:
    token: str
    service_account_email: str
    scopes: tuple[str, ...]
    expires_at: float


class TokenAuthority:
    """Thread-safe: tokens may be minted from gRPC threads and the event loop alike."""

    def __init__(self, clock: Clock | None = None, key_size: int = 2048) -> None:
        self._clock = clock or SystemClock()
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
        self.key_id = secrets.token_hex(20)
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._signer = crypt.RSASigner.from_string(pem, key_id=self.key_id)
        self._certificate_pem = self._self_signed_certificate()
        self._access_tokens: dict[str, AccessToken] = {}  # in expiry order
        self._current_access: dict[tuple[str, tuple[str, ...]], AccessToken] = {}
        self._id_tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def _self_signed_certificate(self) -> str:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localcloud token authority")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .sign(self._key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def clock(self) -> Clock:
        return self._clock

    def certificates(self) -> dict[str, str]:
        """Key id -> PEM certificate: the body of ``/oauth2/v1/certs``."""
        return {self.key_id: self._certificate_pem}

    def mint_id_token(self, audience: str, service_account_email: str = DEFAULT_SERVICE_ACCOUNT) -> str:
        if not audience:
            raise ValueError("an ID token needs a non-empty audience")
        key = (audience, service_account_email)
        with self._lock:
            cached = self._id_tokens.get(key)
        if cached is not None and cached[1] - ID_TOKEN_REUSE_MARGIN_SECONDS > self._clock.now():
            return cached[0]
        now = int(self._clock.now())
        payload = {
            "iss": ISSUER,
            "aud": audience,
            "azp": service_account_email,
            "sub": _subject_of(service_account_email),
            "email": service_account_email,
            "email_verified": True,
            "iat": now,
            "exp": now + TOKEN_LIFETIME_SECONDS,
        }
        token = jwt.encode(self._signer, payload).decode()
        with self._lock:
            self._id_tokens[key] = (token, float(now + TOKEN_LIFETIME_SECONDS))
        return token

    def mint_access_token(
        self,
        service_account_email: str = DEFAULT_SERVICE_ACCOUNT,
        scopes: tuple[str, ...] = ("https://www.googleapis.com/auth/cloud-platform",),
    ) -> AccessToken:
        """The account's live token for these scopes, or a new one when it has less than
        ``ACCESS_TOKEN_REUSE_MARGIN_SECONDS`` left."""
        key = (service_account_email, tuple(scopes))
        now = self._clock.now()
        with self._lock:
            current = self._current_access.get(key)
            if current is not None and current.expires_at - ACCESS_TOKEN_REUSE_MARGIN_SECONDS > now:
                return current
            token = AccessToken(
                token="ya29.local-" + secrets.token_urlsafe(32),
                service_account_email=service_account_email,
                scopes=tuple(scopes),
                expires_at=now + TOKEN_LIFETIME_SECONDS,
            )
            self._current_access[key] = token
            self._prune_access_tokens(now)
            self._access_tokens[token.token] = token
        return token

    def _prune_access_tokens(self, now: float) -> None:
        while self._access_tokens:
            oldest = next(iter(self._access_tokens.values()))
            if oldest.expires_at > now:
                return
            del self._access_tokens[oldest.token]

    def check_access_token(self, token: str) -> AccessToken | None:
        """The token's record if this authority minted it and it has not expired, else None."""
        with self._lock:
            record = self._access_tokens.get(token)
        if record is None or record.expires_at <= self._clock.now():
            return None
        return record

    def check_authorization_header(self, header: str | None) -> AccessToken | None:
        if not header or not header.startswith("Bearer "):
            return None
        return self.check_access_token(header.removeprefix("Bearer ").strip())


def _subject_of(email: str) -> str:
    # A stable numeric id per account, as Google's ``sub`` claim is.
    return str(int.from_bytes(email.encode()[:12].ljust(12, b"\0"), "big") % 10**21)
