"""``saga certify`` passes the demo's trip-booking participants (``examples/participants``, built on the
SDK's barrier), each with a payload it accepts and one it refuses as a business failure."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from saga_participant.certify import main

from examples.participants.server import RunningParticipant, start_participant
from tests.participant.servers import BackgroundLoop, Metadata

API_KEY = "certify-payment-key"
SERVICES: dict[str, tuple[str, str, dict[str, Any], dict[str, Any]]] = {
    "flight": ("/flight/book", "/flight/cancel", {"from": "AMS", "to": "LIS"}, {"simulate": "FAILURE"}),
    "hotel": ("/hotel/reserve", "/hotel/release", {"city": "Lisbon", "nights": 2}, {"simulate": "FAILURE"}),
    "payment": (
        "/payment/charge",
        "/payment/refund",
        {"amount": 420},
        {"amount": 420, "simulate": "decline"},
    ),
}


@pytest.mark.parametrize("service", list(SERVICES))
def test_certify_passes_the_example_participant(
    service: str, metadata: Metadata, background: BackgroundLoop
) -> None:
    async def start() -> RunningParticipant:
        return await start_participant(
            service, certs_url=metadata.certs_url, api_key=API_KEY if service == "payment" else None
        )

    running = background.run(start())
    execute, compensate, payload, failing = SERVICES[service]
    out = io.StringIO()
    try:
        code = main(
            ["--execute", running.url + execute, "--compensate", running.url + compensate,
             "--payload", json.dumps(payload), "--failing-payload", json.dumps(failing),
             "--metadata-host", metadata.host, "--header", f"X-Api-Key: {API_KEY}"],
            out=out,
        )  # fmt: skip
    finally:
        background.run(running.stop())
    assert code == 0, out.getvalue()
    assert "9 passed, 0 failed, 0 skipped" in out.getvalue()
