from __future__ import annotations

import json
import os
import re
import socket
from typing import Any

import pytest
import requests
import requests.adapters
from saga_orchestrator.auth import StaticTokenSource
from saga_orchestrator.model import ActionSpec
from saga_orchestrator.participant import (
    MAX_OUTPUT_BYTES,
    CallContext,
    CallOutcome,
    origin,
    pooled_session,
    prepare,
    send,
)
from saga_orchestrator.testing import RecordingHttpServer, ScriptedResponse

CTX = CallContext("trip-42", "book_flight", "execute", attempt=2)


def call(server: RecordingHttpServer, path: str = "/op", **fields: Any) -> CallOutcome:
    spec = ActionSpec(
        url=server.url(path), payload={"seat": "12A"}, timeout_seconds=fields.pop("timeout", 5), **fields
    )
    prepared = prepare(spec, CTX, outputs={}, secret_values={}, tokens=StaticTokenSource())
    return send(prepared)


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
    outcome = send(prepared)
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
    send(prepare(spec, CTX, outputs={}, secret_values={}, tokens=None))
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
    outcome = send(prepare(spec, CTX, outputs={}, secret_values={}, tokens=None))
    assert outcome.kind == "transient" and outcome.message.startswith("connection failed")


def test_origin_is_scheme_host_and_explicit_port():
    assert origin("https://pay.example.com/v1/charge?x=1") == "https://pay.example.com"
    assert origin("http://127.0.0.1:8081/a") == "http://127.0.0.1:8081"


def test_the_pooled_session_ignores_proxies_named_in_the_environment(http_server, monkeypatch):
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    proxy = f"http://127.0.0.1:{dead.getsockname()[1]}"
    dead.close()
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    spec = ActionSpec(url=http_server.url("/direct"), payload={}, timeout_seconds=5)
    prepared = prepare(spec, CTX, outputs={}, secret_values={}, tokens=StaticTokenSource())
    assert send(prepared, pooled_session()).kind == "success"
    assert len(http_server.requests_to("/direct")) == 1


class _Conn:
    def __init__(self) -> None:
        self.cert_reqs: str | None = None
        self.ca_certs: str | None = None
        self.ca_cert_dir: str | None = None


def test_the_pooled_session_chooses_ca_certificates_as_requests_does_looking_at_the_disk_once(
    tmp_path, monkeypatch
):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not read here")
    directory = tmp_path / "certs"
    directory.mkdir()
    adapter = pooled_session().get_adapter("https://example.com/")
    assert isinstance(adapter, requests.adapters.HTTPAdapter)
    reference = requests.adapters.HTTPAdapter()

    def compare() -> None:
        for verify in (str(bundle), str(directory), True, False):
            for url in ("http://127.0.0.1:1/x", "https://example.com/x"):
                request = requests.Request("POST", url).prepare()
                assert adapter.build_connection_pool_key_attributes(
                    request, verify
                ) == reference.build_connection_pool_key_attributes(request, verify)
                ours, theirs = _Conn(), _Conn()
                adapter.cert_verify(ours, url, verify, None)
                reference.cert_verify(theirs, url, verify, None)
                assert vars(ours) == vars(theirs)

    compare()
    looked: list[str] = []
    isdir, exists = os.path.isdir, os.path.exists

    def counted_isdir(path: str) -> bool:
        looked.append(path)
        return isdir(path)

    def counted_exists(path: str) -> bool:
        looked.append(path)
        return exists(path)

    monkeypatch.setattr(os.path, "isdir", counted_isdir)
    monkeypatch.setattr(os.path, "exists", counted_exists)
    request = requests.Request("POST", "https://example.com/x").prepare()
    for verify in (str(bundle), str(directory), True):
        adapter.build_connection_pool_key_attributes(request, verify)
        adapter.cert_verify(_Conn(), "https://example.com/x", verify, None)
    assert looked == []
    missing = str(tmp_path / "missing.pem")
    with pytest.raises(OSError, match="invalid path"):
        adapter.cert_verify(_Conn(), "https://example.com/x", missing, None)
