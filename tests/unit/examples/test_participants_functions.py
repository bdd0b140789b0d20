"""The demo participants as functions-framework functions (``examples/participants/functions.py``): their
settings from the environment, and a service's whole surface through ``functions_framework.create_app``
(the real functions-framework app and the SDK's Flask adapter; the e2e suite runs it under gunicorn)."""

from __future__ import annotations

import asyncio
from typing import Any

import functions_framework
import pytest

from examples.participants.functions import config_from_env
from examples.participants.pipeline import log
from examples.participants.server import FUNCTIONS_SOURCE
from localcloud.auth import TokenAuthority

ORIGIN = "https://flight.example.test"


def test_settings_come_from_the_environment_with_loopback_audiences_by_default() -> None:
    config = config_from_env(
        "payment",
        {
            "PORT": "9103",
            "PAYMENT_API_KEY": "k",
            "OIDC_CERTS_URL": "http://c/certs",
            "PARTICIPANT_HANG_SECONDS": "2",
        },
    )
    assert config.audiences == ("http://127.0.0.1:9103", "http://localhost:9103")
    assert (config.api_key, config.certs_url, config.hang_seconds) == ("k", "http://c/certs", 2.0)
    flight = config_from_env(
        "flight", {"PARTICIPANT_AUDIENCES": f"{ORIGIN}, http://other", "PAYMENT_API_KEY": "k"}
    )
    assert flight.audiences == (ORIGIN, "http://other") and flight.api_key is None


async def test_one_function_serves_the_business_effects_and_control_urls_of_its_service(
    certs_url: str, authority: TokenAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Loading the function configures its logger (stdout, not propagated): undone after the test.
    monkeypatch.setattr(log, "handlers", list(log.handlers))
    monkeypatch.setattr(log, "propagate", log.propagate)
    monkeypatch.setenv("OIDC_CERTS_URL", certs_url)
    monkeypatch.setenv("PARTICIPANT_AUDIENCES", ORIGIN)
    client = functions_framework.create_app("flight", str(FUNCTIONS_SOURCE)).test_client()
    headers = {
        "Authorization": f"Bearer {authority.mint_id_token(ORIGIN)}",
        "Idempotency-Key": "t-1:book_flight:execute",
        "X-Saga-Id": "t-1",
        "X-Saga-Step": "book_flight",
        "X-Saga-Action": "execute",
    }

    def call(method: str, path: str, **options: Any) -> tuple[int, Any]:
        response = client.open(path, method=method, **options)
        return response.status_code, response.get_json()

    booked = await asyncio.to_thread(call, "POST", "/flight/book", json={"to": "LIS"}, headers=headers)
    again = await asyncio.to_thread(call, "PUT", "/flight/book", json={"to": "LIS"}, headers=headers)
    effects = await asyncio.to_thread(call, "GET", "/_saga/effects?saga_id=t-1", headers=headers)
    assert booked[0] == 200 and booked[1]["booking_id"].startswith("FL-") and again == booked
    assert effects[1]["effects"] == [
        {"step": "book_flight", "action": "execute", "idempotency_key": "t-1:book_flight:execute"}
    ]
    calls = call("GET", "/_control/calls")[1]
    assert [(c["method"], c["status"], c["effect"], c["outcome"]) for c in calls] == [
        ("POST", 200, True, "booked"),
        ("PUT", 200, False, "replayed first answer"),
    ]
    assert call("GET", "/hotel/reserve")[0] == 404 and call("GET", "/flight/book")[0] == 405
    assert call("POST", "/_control/calls")[0] == 405 and call("POST", "/_control/reset")[1] == {"reset": True}
