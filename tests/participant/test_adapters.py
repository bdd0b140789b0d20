"""What every adapter must do besides the barrier, over real HTTP: refuse malformed calls with every
fault named, keep ``/_saga/effects`` off unless enabled, and run a functions-framework function."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import functions_framework
import pytest
from saga_participant import Participant, SQLiteStore
from saga_participant.certify import main

from tests.participant.apps import GOOD_PAYLOAD, Flights, flask_app, policy
from tests.participant.servers import ORCHESTRATOR, Metadata, free_port, serve_wsgi


def post(url: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@pytest.fixture
def flights_origin(metadata: Metadata) -> Iterator[str]:
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    participant = Participant(auth=policy(metadata, origin), store=SQLiteStore())
    flights = Flights()
    participant.execute(flights.book)
    participant.compensate(flights.cancel)
    with serve_wsgi(flask_app(participant), port) as served:
        yield served


def test_a_call_without_the_saga_headers_is_refused_naming_each(
    flights_origin: str, metadata: Metadata
) -> None:
    token = metadata.token(flights_origin)
    status, body = post(
        f"{flights_origin}/flight/book",
        {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "X-Saga-Action": "compensate",
        },
        GOOD_PAYLOAD,
    )
    assert status == 400
    for fault in ("Idempotency-Key", "X-Saga-Id", "X-Saga-Step", "this endpoint is for execute"):
        assert fault in body["message"]


def test_a_token_is_checked_before_anything_else(flights_origin: str) -> None:
    status, body = post(f"{flights_origin}/flight/book", {}, GOOD_PAYLOAD)
    assert (status, body["error"]) == (401, "UNAUTHENTICATED")


def test_the_effects_endpoint_is_off_unless_enabled(flights_origin: str, metadata: Metadata) -> None:
    request = urllib.request.Request(
        f"{flights_origin}/_saga/effects?saga_id=trip-1",
        headers={"Authorization": f"Bearer {metadata.token(flights_origin)}"},
    )
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(request, timeout=10)
    assert missing.value.code == 404


@pytest.fixture
def function_app(metadata: Metadata, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("FLIGHTS_ORIGIN", origin)
    monkeypatch.setenv("FLIGHTS_SERVICE_ACCOUNT", ORCHESTRATOR)
    monkeypatch.setenv("FLIGHTS_CERTS_URL", metadata.certs_url)
    monkeypatch.setenv("FLIGHTS_BARRIER_DB", str(tmp_path / "barrier.db"))
    # create_app() writes FUNCTION_SIGNATURE_TYPE into the process environment.
    monkeypatch.setenv("FUNCTION_SIGNATURE_TYPE", os.environ.get("FUNCTION_SIGNATURE_TYPE", "http"))
    source = Path(__file__).parent / "functions_flights" / "main.py"
    app = functions_framework.create_app("flights_participant", str(source), "http")
    with serve_wsgi(app, port) as served:
        yield served


def test_certify_passes_a_functions_framework_participant_on_one_url(
    function_app: str, metadata: Metadata
) -> None:
    url = f"{function_app}/"
    code = main(
        ["--execute", url, "--compensate", url, "--payload", json.dumps(GOOD_PAYLOAD),
         "--failing-payload", json.dumps({"to": "ATLANTIS"}), "--metadata-host", metadata.host]
    )  # fmt: skip
    assert code == 0
