"""The answer helpers and the call reader: what a handler can and cannot answer, what it reads."""

from __future__ import annotations

import pytest
from saga_participant import CallError, business_failure, read_call, retry_later, success


def test_the_helpers_answer_only_in_the_protocols_terms() -> None:
    assert (success({"id": 1}).status, success({"id": 1}).final) == (200, True)
    refused = business_failure("SOLD_OUT", "no seats left", status=422, seats=0)
    assert (refused.status, refused.body, refused.effect) == (
        422,
        {"error": "SOLD_OUT", "message": "no seats left", "seats": 0},
        False,
    )
    later = retry_later(seconds=7)
    assert (later.status, later.headers["Retry-After"], later.final) == (425, "7", False)
    for wrong in (lambda: success(status=409), lambda: business_failure("X", "y", status=425)):
        with pytest.raises(ValueError):
            wrong()
    with pytest.raises(ValueError):
        business_failure("X", "y", status=500)  # a 5xx is retried: never a business failure
    with pytest.raises(ValueError):
        retry_later(status=409)


def test_a_call_reads_the_saga_headers_the_trace_and_the_payload() -> None:
    headers = {
        "Idempotency-Key": "trip-1:book_flight:execute",
        "X-Saga-Id": "trip-1",
        "X-Saga-Step": "book_flight",
        "X-Saga-Action": "execute",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    }
    call = read_call(headers, {"booking": "b-1"}, caller="saga-runtime@p.iam.gserviceaccount.com")
    assert (call.saga_id, call.step, call.action, call.idempotency_key) == (
        "trip-1",
        "book_flight",
        "execute",
        "trip-1:book_flight:execute",
    )
    assert call.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736" and call.payload == {"booking": "b-1"}


def test_every_fault_of_a_call_is_named_at_once() -> None:
    with pytest.raises(CallError) as faults:
        read_call({"X-Saga-Action": "undo"}, None)
    assert len(faults.value.problems) == 4
    assert "Idempotency-Key" in str(faults.value) and "'undo'" in str(faults.value)
