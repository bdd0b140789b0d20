from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from saga_orchestrator.httpclient import HttpClient
from saga_orchestrator.model import ActionSpec
from saga_orchestrator.participant import (
    MAX_OUTPUT_BYTES,
    CallContext,
    CallOutcome,
    origin,
    prepare,
    send,
)

from tests.contract.cloud import StaticTokenSource
from tests.support.http import RecordingHttpServer, ScriptedResponse
from tests.support.tls import self_signed_certificate

CTX = CallContext("trip-42", "book_flight", "execute", attempt=2)
HTTP = HttpClient.from_env({})


def call(server: RecordingHttpServer, path: str = "/op", **fields: Any) -> CallOutcome:
    spec = ActionSpec(
        url=server.url(path), payload={"seat": "12A"}, timeout_seconds=fields.pop("timeout", 5), **fields
    )
    prepared = prepare(spec, CTX, outputs={}, secret_values={}, tokens=StaticTokenSource())
    return send(prepared, HTTP)


def test_the_participant_gets_the_payload_and_the_saga_headers(http_server):
    tokens = StaticTokenSource(id_token="id-tok")
    spec = ActionSpec(
        url=http_server.url("/book?x=1"),
        payload={"flight": {"$ref": "steps.search.output.flight"}},
        headers={"X-Tenant": "t1", "X-Flight": {"$ref": "steps.search.output.flight"}},
    )
    prepared = prepare(
        spec,
        CTX,
        outputs={"search": {"flight": "LH400"}},
        secret_values={"X-Api-Key": "s3cret"},
        tokens=tokens,
    )
    outcome = send(prepared, HTTP)
    assert outcome == CallOutcome("success", 200, {}, "")
    [seen] = http_server.requests_to("/book")
    assert seen.method == "POST"
    assert json.loads(seen.body) == {"flight": "LH400"}
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["Idempotency-Key"] == "trip-42:book_flight:execute"
    assert seen.headers["X-Saga-Id"] == "trip-42"
    assert seen.headers["X-Saga-Step"] == "book_flight"
    assert seen.headers["X-Saga-Action"] == "execute"
    assert seen.headers["X-Tenant"] == "t1"
    assert seen.headers["X-Flight"] == "LH400"
    assert seen.headers["X-Api-Key"] == "s3cret"
    assert seen.headers["Authorization"] == "Bearer id-tok"
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", seen.headers["traceparent"])
    assert tokens.audiences == [f"http://127.0.0.1:{http_server.port}"]
    assert prepared.sensitive == {"X-Api-Key", "Authorization"}


def test_every_attempt_repeats_the_idempotency_key_and_the_trace(http_server):
    call(http_server)
    call(http_server)
    first, second = http_server.requests_to("/op")
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert first.headers["traceparent"][:36] == second.headers["traceparent"][:36]


def test_auth_none_sends_no_authorization(http_server):
    call(http_server, auth="none")
    assert "Authorization" not in http_server.requests_to("/op")[0].headers


def test_get_without_payload_sends_no_body(http_server):
    spec = ActionSpec(url=http_server.url("/status"), method="GET", payload=None, auth="none")
    send(prepare(spec, CTX, outputs={}, secret_values={}, tokens=None), HTTP)
    [seen] = http_server.requests_to("/status")
    assert seen.method == "GET" and seen.body == b"" and "Content-Type" not in seen.headers


@pytest.mark.parametrize(
    ("response", "kind", "output"),
    [
        (ScriptedResponse(200, b'{"booking_id": "b-1"}'), "success", {"booking_id": "b-1"}),
        (ScriptedResponse(201, b"[1, 2]"), "success", [1, 2]),
        (ScriptedResponse(204, b"", content_type="text/plain"), "success", None),
        (ScriptedResponse(200, b"booked", content_type="text/plain"), "success", "booked"),
        (ScriptedResponse(200, b"{not json"), "success", "{not json"),
        (ScriptedResponse(409, b'{"error": "sold out"}'), "business", None),
        (ScriptedResponse(422, b""), "business", None),
        (ScriptedResponse(400, b"bad"), "business", None),
        (ScriptedResponse(404, b""), "business", None),
        (ScriptedResponse(302, b"", headers=(("Location", "http://169.254.169.254/"),)), "business", None),
        (ScriptedResponse(408, b""), "transient", None),
        (ScriptedResponse(425, b""), "transient", None),
        (ScriptedResponse(429, b""), "transient", None),
        (ScriptedResponse(500, b"boom"), "transient", None),
        (ScriptedResponse(503, b""), "transient", None),
    ],
)
def test_every_http_answer_is_classified(http_server, response, kind, output):
    http_server.script("/op", response)
    outcome = call(http_server)
    assert (outcome.kind, outcome.status_code, outcome.output) == (kind, response.status, output)
    assert outcome.retryable is (kind == "transient")


def test_error_messages_carry_the_status_and_body(http_server):
    http_server.script("/op", ScriptedResponse(409, b'{"error": "sold out"}'))
    assert call(http_server).message == 'HTTP 409: {"error": "sold out"}'


def test_redirects_are_not_followed(http_server):
    http_server.script(
        "/op", ScriptedResponse(307, b"", headers=(("Location", http_server.url("/elsewhere")),))
    )
    outcome = call(http_server)
    assert outcome.kind == "business" and "redirects are not followed" in outcome.message
    assert http_server.requests_to("/elsewhere") == []


def test_an_oversized_output_is_a_business_failure(http_server):
    http_server.script("/op", ScriptedResponse(200, b'"' + b"x" * MAX_OUTPUT_BYTES + b'"'))
    outcome = call(http_server)
    assert outcome.kind == "business" and outcome.status_code == 200
    assert outcome.message == (
        f"the response body is over {MAX_OUTPUT_BYTES} bytes; outputs are limited to {MAX_OUTPUT_BYTES}"
    )


def test_a_huge_answer_is_read_no_further_than_the_limit_and_the_next_call_works(http_server):
    http_server.script(
        "/op", ScriptedResponse(200, b"x" * (64 * MAX_OUTPUT_BYTES)), ScriptedResponse(200, b"{}")
    )
    http = HttpClient()
    spec = ActionSpec(url=http_server.url("/op"), payload={}, auth="none", timeout_seconds=5)
    answer = http.request(
        "POST", spec.url, headers={}, body=b"{}", connect_timeout=5, read_timeout=5, max_body=10
    )
    assert (answer.status, answer.body, answer.truncated) == (200, b"x" * 11, True)
    assert send(prepare(spec, CTX, outputs={}, secret_values={}, tokens=None), http).succeeded


def test_a_timeout_is_transient(http_server):
    http_server.script("/op", ScriptedResponse(200, b"{}", delay_seconds=3))
    outcome = call(http_server, timeout=1)
    assert outcome == CallOutcome("transient", None, None, "no answer within 1 s")


def test_a_dropped_connection_is_transient(http_server):
    http_server.drop("/op")
    outcome = call(http_server)
    assert outcome.kind == "transient" and outcome.status_code is None


def test_a_refused_connection_is_transient():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    spec = ActionSpec(url=f"http://127.0.0.1:{port}/op", auth="none", timeout_seconds=2)
    outcome = send(prepare(spec, CTX, outputs={}, secret_values={}, tokens=None), HTTP)
    assert outcome.kind == "transient" and outcome.message.startswith("connection failed")


def test_origin_is_scheme_host_and_explicit_port():
    assert origin("https://pay.example.com/v1/charge?x=1") == "https://pay.example.com"
    assert origin("http://127.0.0.1:8081/a") == "http://127.0.0.1:8081"


def test_calls_ignore_proxies_named_in_the_environment(http_server, monkeypatch):
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    proxy = f"http://127.0.0.1:{dead.getsockname()[1]}"
    dead.close()
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    spec = ActionSpec(url=http_server.url("/direct"), payload={}, timeout_seconds=5)
    prepared = prepare(spec, CTX, outputs={}, secret_values={}, tokens=StaticTokenSource())
    assert send(prepared, HttpClient.from_env({"HTTP_PROXY": proxy})).kind == "success"
    assert send(prepared, HttpClient.from_env(os.environ)).kind == "success"
    assert len(http_server.requests_to("/direct")) == 2


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RecordingHttpServer, str]]:
    cert, key = self_signed_certificate(str(tmp_path_factory.mktemp("tls")))
    server = RecordingHttpServer(tls=(cert, key)).start()
    yield server, cert
    server.stop()


def tls_call(server: RecordingHttpServer, http: HttpClient) -> CallOutcome:
    spec = ActionSpec(url=server.url("/secure"), payload={}, auth="none", timeout_seconds=5)
    return send(prepare(spec, CTX, outputs={}, secret_values={}, tokens=None), http)


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_https_participants_are_verified_against_the_ca_bundle_named_in_the_environment(tls_server, variable):
    server, cert = tls_server
    assert tls_call(server, HttpClient.from_env({variable: cert})) == CallOutcome("success", 200, {}, "")


def test_an_https_participant_whose_certificate_is_not_trusted_is_a_transient_connection_failure(
    tls_server,
):
    server, _ = tls_server
    outcome = tls_call(server, HttpClient.from_env({}))
    assert outcome.kind == "transient" and outcome.status_code is None
    assert outcome.message.startswith("connection failed") and "CERTIFICATE_VERIFY_FAILED" in outcome.message


def test_a_ca_bundle_that_is_missing_fails_https_calls_only(tls_server, http_server, tmp_path):
    server, _ = tls_server
    http = HttpClient.from_env({"REQUESTS_CA_BUNDLE": str(tmp_path / "missing.pem")})
    assert tls_call(server, http).kind == "transient"
    assert call_with(http_server, http).succeeded


def test_a_ca_bundle_directory_is_used_as_one(tmp_path):
    assert HttpClient(ca_bundle=str(tmp_path)).tls == {
        "cert_reqs": "CERT_REQUIRED",
        "ca_cert_dir": str(tmp_path),
    }
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    assert HttpClient(ca_bundle=str(bundle)).tls == {"cert_reqs": "CERT_REQUIRED", "ca_certs": str(bundle)}


def call_with(server: RecordingHttpServer, http: HttpClient) -> CallOutcome:
    spec = ActionSpec(url=server.url("/plain"), payload={}, auth="none", timeout_seconds=5)
    return send(prepare(spec, CTX, outputs={}, secret_values={}, tokens=None), http)
