from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time

from tests.support.http import ScriptedResponse

FLAVOR = (("Metadata-Flavor", "Google"),)
SA_PATH = "/computeMetadata/v1/instance/service-accounts/default"


def fake_jwt(audience: str) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part({'aud': audience, 'exp': int(time.time()) + 3600})}.c2ln"


def test_google_token_source_gets_both_tokens_from_the_metadata_server_named_by_the_environment(http_server):
    """Runs in a child process: google-auth reads GCE_METADATA_HOST when it is imported."""
    token = fake_jwt("http://127.0.0.1:8081")
    http_server.script("/", ScriptedResponse(200, b"", content_type="text/plain", headers=FLAVOR))
    http_server.script(
        f"{SA_PATH}/identity", ScriptedResponse(200, token.encode(), "text/plain", headers=FLAVOR)
    )
    http_server.script(
        f"{SA_PATH}/token",
        ScriptedResponse(
            200, b'{"access_token": "ya29.local", "expires_in": 3599, "token_type": "Bearer"}', headers=FLAVOR
        ),
    )
    http_server.script(
        f"{SA_PATH}/",
        ScriptedResponse(
            200,
            b'{"email": "saga-executor@local-project.iam.gserviceaccount.com", "scopes": ["https://www.googleapis.com/auth/cloud-platform"], "aliases": ["default"]}',
            headers=FLAVOR,
        ),
    )
    http_server.script(
        "/computeMetadata/v1/project/project-id",
        ScriptedResponse(200, b"local-project", "text/plain", headers=FLAVOR),
    )
    script = (
        "from saga_orchestrator.auth import GoogleTokenSource\n"
        "s = GoogleTokenSource()\n"
        "print(s.id_token('http://127.0.0.1:8081'))\n"
        "print(s.id_token('http://127.0.0.1:8081'))\n"
        "print(s.access_token())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "GCE_", "CLOUDSDK_"))}
    env.update(
        GCE_METADATA_HOST=f"127.0.0.1:{http_server.port}",
        GCE_METADATA_IP=f"127.0.0.1:{http_server.port}",
        CLOUDSDK_CONFIG=str(os.devnull),
        HOME="/nonexistent",
    )
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [token, token, "ya29.local"]
    identity_calls = http_server.requests_to(f"{SA_PATH}/identity")
    assert len(identity_calls) == 1  # the second ID token came from the cache
    assert "audience=http%3A%2F%2F127.0.0.1%3A8081" in identity_calls[0].path
    assert all(
        {k.lower(): v for k, v in r.headers.items()}["metadata-flavor"] == "Google"
        for r in http_server.requests
    )
