"""The metadata server's HTTP surface (aiohttp).

Behaviour follows https://cloud.google.com/compute/docs/metadata/querying-metadata: every request must
carry ``Metadata-Flavor: Google`` and must not carry ``X-Forwarded-For`` (403 otherwise); every answer
carries ``Metadata-Flavor: Google``; directories end in ``/`` and list their entries one per line;
``?recursive=true`` returns a directory as JSON. Service accounts may be addressed as ``default`` or by
email. The certificate pages are served without the flavor check, as ``www.googleapis.com`` serves them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from localcloud._project import project_number
from localcloud.auth import TokenAuthority

FLAVOR_HEADER = "Metadata-Flavor"
FLAVOR_VALUE = "Google"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
CERTS_MAX_AGE_SECONDS = 3600

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class MetadataIdentity:
    """What the emulated instance reports about itself."""

    project_id: str
    service_account_email: str
    scopes: tuple[str, ...] = (CLOUD_PLATFORM_SCOPE,)
    zone: str = "us-central1-a"
    numeric_project_id: str = field(default="")  # "": the local cloud's number for the id

    @property
    def project_number(self) -> str:
        # The number every emulator reads as this project (localcloud._project), unless one is given.
        return project_number(self.project_id, self.numeric_project_id)


def default_service_account(project_id: str) -> str:
    return f"saga-runtime@{project_id}.iam.gserviceaccount.com"


def _text(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="application/text")


def _json(value: object) -> web.Response:
    return web.Response(text=json.dumps(value), content_type="application/json")


def _cacheable(response: web.Response) -> web.Response:
    # As www.googleapis.com serves its certificates; verifiers keep them this long. The authority's key
    # never changes while the server runs (a restarted server has a new key id, which a verifier that
    # caches by key id fetches again for).
    response.headers["Cache-Control"] = f"public, max-age={CERTS_MAX_AGE_SECONDS}, must-revalidate"
    return response


@web.middleware
async def _flavor(request: web.Request, handler: Handler) -> web.StreamResponse:
    guarded = not request.path.startswith("/oauth2/")
    if guarded and (
        request.headers.get(FLAVOR_HEADER) != FLAVOR_VALUE or "X-Forwarded-For" in request.headers
    ):
        response: web.StreamResponse = _text(
            "Missing required header: Metadata-Flavor: Google (and no X-Forwarded-For)\n", 403
        )
        response.headers[FLAVOR_HEADER] = FLAVOR_VALUE
        return response
    try:
        response = await handler(request)
    except web.HTTPException as error:
        error.headers[FLAVOR_HEADER] = FLAVOR_VALUE
        raise
    response.headers[FLAVOR_HEADER] = FLAVOR_VALUE
    return response


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwks(authority: TokenAuthority) -> dict[str, object]:
    """The authority's keys in the shape of https://www.googleapis.com/oauth2/v3/certs."""
    keys = []
    for kid, pem in authority.certificates().items():
        public_key = x509.load_pem_x509_certificate(pem.encode()).public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            continue
        numbers = public_key.public_numbers()
        keys.append(
            {
                "kty": "RSA",
                "alg": "RS256",
                "use": "sig",
                "kid": kid,
                "n": _b64url_uint(numbers.n),
                "e": _b64url_uint(numbers.e),
            }
        )
    return {"keys": keys}


ROOT = "/computeMetadata/v1"
ACCOUNT = f"{ROOT}/instance/service-accounts/{{account}}"
IDENTITY_KEY = web.AppKey("identity", MetadataIdentity)
AUTHORITY_KEY = web.AppKey("authority", TokenAuthority)


def _account_of(request: web.Request) -> str:
    identity = request.app[IDENTITY_KEY]
    name = request.match_info["account"]
    if name not in ("default", identity.service_account_email):
        raise web.HTTPNotFound(text="Not Found\n", content_type="application/text")
    return identity.service_account_email


async def _ping(request: web.Request) -> web.Response:
    return _text("computeMetadata/\n")


async def _versions(request: web.Request) -> web.Response:
    return _text("v1/\n")


async def _v1_root(request: web.Request) -> web.Response:
    return _text("instance/\nproject/\n")


async def _project_dir(request: web.Request) -> web.Response:
    identity = request.app[IDENTITY_KEY]
    if request.query.get("recursive") == "true":
        return _json({"projectId": identity.project_id, "numericProjectId": int(identity.project_number)})
    return _text("numeric-project-id\nproject-id\n")


async def _project_id(request: web.Request) -> web.Response:
    return _text(request.app[IDENTITY_KEY].project_id)


async def _numeric_project_id(request: web.Request) -> web.Response:
    return _text(request.app[IDENTITY_KEY].project_number)


async def _instance_zone(request: web.Request) -> web.Response:
    identity = request.app[IDENTITY_KEY]
    return _text(f"projects/{identity.project_number}/zones/{identity.zone}")


async def _accounts_dir(request: web.Request) -> web.Response:
    return _text(f"default/\n{request.app[IDENTITY_KEY].service_account_email}/\n")


async def _account_dir(request: web.Request) -> web.Response:
    email = _account_of(request)
    if request.query.get("recursive") == "true":
        scopes = list(request.app[IDENTITY_KEY].scopes)
        return _json({"aliases": ["default"], "email": email, "scopes": scopes})
    return _text("aliases\nemail\nidentity\nscopes\ntoken\n")


async def _account_email(request: web.Request) -> web.Response:
    return _text(_account_of(request))


async def _account_aliases(request: web.Request) -> web.Response:
    _account_of(request)
    return _text("default\n")


async def _account_scopes(request: web.Request) -> web.Response:
    _account_of(request)
    return _text("".join(scope + "\n" for scope in request.app[IDENTITY_KEY].scopes))


async def _account_token(request: web.Request) -> web.Response:
    email = _account_of(request)
    authority = request.app[AUTHORITY_KEY]
    requested = request.query.get("scopes", "")
    scopes = tuple(s for s in requested.split(",") if s) or request.app[IDENTITY_KEY].scopes
    token = authority.mint_access_token(email, scopes)
    # A reused token: its remaining life, as the real server answers.
    expires_in = max(1, int(token.expires_at - authority.clock.now()))
    return _json({"access_token": token.token, "expires_in": expires_in, "token_type": "Bearer"})


async def _account_identity(request: web.Request) -> web.Response:
    email = _account_of(request)
    audience = request.query.get("audience", "")
    if not audience:
        return _text("non-empty audience parameter required\n", 400)
    return _text(request.app[AUTHORITY_KEY].mint_id_token(audience, email))


async def _certs_v1(request: web.Request) -> web.Response:
    return _cacheable(_json(request.app[AUTHORITY_KEY].certificates()))


async def _certs_v3(request: web.Request) -> web.Response:
    return _cacheable(_json(jwks(request.app[AUTHORITY_KEY])))


GET_ROUTES: tuple[tuple[str, Handler], ...] = (
    ("/", _ping),
    ("/computeMetadata/", _versions),
    (f"{ROOT}/", _v1_root),
    (f"{ROOT}/project/", _project_dir),
    (f"{ROOT}/project/project-id", _project_id),
    (f"{ROOT}/project/numeric-project-id", _numeric_project_id),
    (f"{ROOT}/instance/zone", _instance_zone),
    (f"{ROOT}/instance/service-accounts/", _accounts_dir),
    (f"{ACCOUNT}/", _account_dir),
    (f"{ACCOUNT}/email", _account_email),
    (f"{ACCOUNT}/aliases", _account_aliases),
    (f"{ACCOUNT}/scopes", _account_scopes),
    (f"{ACCOUNT}/token", _account_token),
    (f"{ACCOUNT}/identity", _account_identity),
    ("/oauth2/v1/certs", _certs_v1),
    ("/oauth2/v3/certs", _certs_v3),
)
# google-auth switches to POST (with a certificate chain body) for bound tokens; answer it the same way.
POST_ROUTES: tuple[tuple[str, Handler], ...] = (
    (f"{ACCOUNT}/token", _account_token),
    (f"{ACCOUNT}/identity", _account_identity),
)


def create_app(identity: MetadataIdentity, authority: TokenAuthority) -> web.Application:
    app = web.Application(middlewares=[_flavor])
    app[IDENTITY_KEY] = identity
    app[AUTHORITY_KEY] = authority
    for path, handler in GET_ROUTES:
        app.router.add_get(path, handler)
    for path, handler in POST_ROUTES:
        app.router.add_post(path, handler)
    return app
