"""The demo participants through real HTTP: idempotency, the barrier, ID tokens, the API key, failure
injection. Tokens are minted by ``localcloud.auth.TokenAuthority`` and verified against certificates served
on a local HTTP server, with google-auth's own ``verify_token``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from examples.participants.server import RunningParticipant
from localcloud.auth import TokenAuthority

API_KEY = "test-payment-key-5f1d"
StartParticipant = Callable[..., Awaitable[RunningParticipant]]


@dataclass
class Reply:
    status: int
    body: Any


@dataclass
class Caller:
    session: aiohttp.ClientSession
    authority: TokenAuthority
    participant: RunningParticipant

    async def call(
        self,
        path: str,
        payload: Any = None,
        *,
        saga: str | None = "trip-1",
        step: str | None = "book_flight",
        action: str = "execute",
        key: str | None = "default",
        token: str | None = "valid",
        api_key: str | None = API_KEY,
        timeout: float = 10,
    ) -> Reply:
        headers: dict[str, str] = {}
        if key == "default":
            key = f"{saga}:{step}:{action}"
        if key is not None:
            headers["Idempotency-Key"] = key
        if saga is not None:
            headers["X-Saga-Id"] = saga
        if step is not None:
            headers["X-Saga-Step"] = step
        headers["X-Saga-Action"] = action
        if token == "valid":
            token = self.authority.mint_id_token(
                self.participant.url, "saga-executor@local-project.iam.gserviceaccount.com"
            )
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if api_key is not None and self.participant.service == "payment":
            headers["X-Api-Key"] = api_key
        async with self.session.post(
            self.participant.url + path,
            json=payload if payload is not None else {},
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            return Reply(response.status, await response.json())

    async def control(self, path: str, body: Any = None) -> Reply:
        url = self.participant.url + "/_control/" + path
        method = "GET" if path in ("calls", "state") else "POST"
        async with self.session.request(method, url, json=body) as response:
            return Reply(response.status, await response.json())

    async def calls(self) -> list[dict[str, Any]]:
        reply = await self.control("calls")
        assert reply.status == 200
        return list(reply.body)


@pytest.fixture
async def flight(
    start: StartParticipant, session: aiohttp.ClientSession, authority: TokenAuthority
) -> Caller:
    return Caller(session, authority, await start("flight"))


@pytest.fixture
async def payment(
    start: StartParticipant, session: aiohttp.ClientSession, authority: TokenAuthority
) -> Caller:
    return Caller(session, authority, await start("payment"))


async def test_execute_returns_an_id_that_a_compensation_can_reference(flight: Caller) -> None:
    reply = await flight.call("/flight/book", {"from": "AMS", "to": "LIS"})
    assert reply.status == 200
    assert reply.body["status"] == "booked" and reply.body["booking_id"].startswith("FL-")
    assert (reply.body["from"], reply.body["to"]) == ("AMS", "LIS")


async def test_a_repeated_idempotency_key_gets_the_first_answer_and_books_once(flight: Caller) -> None:
    first = await flight.call("/flight/book", {"from": "AMS"})
    second = await flight.call("/flight/book", {"from": "AMS"})
    assert second == first
    calls = await flight.calls()
    assert [(c["status"], c["effect"]) for c in calls] == [(200, True), (200, False)]
    state = (await flight.control("state")).body
    assert list(state["resources"]) == [first.body["booking_id"]]


async def test_concurrent_attempts_with_one_key_have_one_effect(flight: Caller) -> None:
    replies = await asyncio.gather(*(flight.call("/flight/book", {"n": 1}) for _ in range(6)))
    assert {r.status for r in replies} == {200}
    assert len({r.body["booking_id"] for r in replies}) == 1
    assert sum(c["effect"] for c in await flight.calls()) == 1


async def test_compensation_cancels_the_booking_it_names(flight: Caller) -> None:
    booked = await flight.call("/flight/book", {"from": "AMS"})
    booking_id = booked.body["booking_id"]
    cancelled = await flight.call("/flight/cancel", {"booking_id": booking_id}, action="compensate")
    assert cancelled == type(cancelled)(200, {"booking_id": booking_id, "status": "cancelled"})
    retried = await flight.call("/flight/cancel", {"booking_id": booking_id}, action="compensate")
    assert retried == cancelled
    state = (await flight.control("state")).body
    assert state["resources"][booking_id]["status"] == "cancelled"
    assert [c["effect"] for c in await flight.calls()] == [True, True, False]


async def test_compensation_without_a_reference_undoes_what_the_same_step_did(flight: Caller) -> None:
    booked = await flight.call("/flight/book", {})
    cancelled = await flight.call("/flight/cancel", {}, action="compensate")
    assert cancelled.body == {"booking_id": booked.body["booking_id"], "status": "cancelled"}


async def test_compensation_before_execute_is_a_remembered_no_op_and_refuses_the_late_execute(
    flight: Caller,
) -> None:
    null = await flight.call("/flight/cancel", {"booking_id": None}, action="compensate")
    assert null.status == 200 and null.body["status"] == "nothing_to_undo"
    late = await flight.call("/flight/book", {"from": "AMS"})
    assert late.status == 409 and late.body["error"] == "ALREADY_COMPENSATED"
    assert (await flight.control("state")).body["resources"] == {}
    calls = await flight.calls()
    assert [(c["action"], c["status"], c["effect"]) for c in calls] == [
        ("compensate", 200, False),
        ("execute", 409, False),
    ]
    assert calls[0]["outcome"] == "null compensation"


async def test_barrier_pairs_by_idempotency_key_when_saga_headers_are_absent(flight: Caller) -> None:
    null = await flight.call(
        "/flight/cancel", {}, saga=None, step=None, action="compensate", key="t-9:book_flight:compensate"
    )
    assert null.status == 200
    late = await flight.call("/flight/book", {}, saga=None, step=None, key="t-9:book_flight:execute")
    assert late.status == 409
    other = await flight.call("/flight/book", {}, saga=None, step=None, key="t-10:book_flight:execute")
    assert other.status == 200


async def test_calls_list_names_service_path_action_saga_step_key_and_caller(flight: Caller) -> None:
    await flight.call("/flight/book", {}, saga="trip-7", step="book_flight")
    (call,) = await flight.calls()
    assert {
        k: call[k] for k in ("service", "path", "action", "saga_id", "step", "idempotency_key", "status")
    } == {
        "service": "flight",
        "path": "/flight/book",
        "action": "execute",
        "saga_id": "trip-7",
        "step": "book_flight",
        "idempotency_key": "trip-7:book_flight:execute",
        "status": 200,
    }
    assert call["caller"] == "saga-executor@local-project.iam.gserviceaccount.com"


async def test_a_call_without_a_token_is_refused_with_401_and_has_no_effect(flight: Caller) -> None:
    reply = await flight.call("/flight/book", {}, token=None)
    assert reply.status == 401
    assert [(c["status"], c["effect"]) for c in await flight.calls()] == [(401, False)]


async def test_a_token_for_another_audience_is_refused(flight: Caller, authority: TokenAuthority) -> None:
    token = authority.mint_id_token(
        "http://127.0.0.1:1", "saga-executor@local-project.iam.gserviceaccount.com"
    )
    assert (await flight.call("/flight/book", {}, token=token)).status == 401


async def test_a_token_signed_by_an_unknown_key_is_refused(flight: Caller) -> None:
    stranger = TokenAuthority(key_size=1024)
    token = stranger.mint_id_token(flight.participant.url)
    assert (await flight.call("/flight/book", {}, token=token)).status == 401


async def test_an_expired_token_is_refused(flight: Caller, past_authority: TokenAuthority) -> None:
    token = past_authority.mint_id_token(flight.participant.url)
    assert (await flight.call("/flight/book", {}, token=token)).status == 401


async def test_a_garbage_token_is_refused(flight: Caller) -> None:
    assert (await flight.call("/flight/book", {}, token="not-a-jwt")).status == 401


async def test_a_localhost_origin_is_an_accepted_audience(flight: Caller, authority: TokenAuthority) -> None:
    token = authority.mint_id_token(flight.participant.url.replace("127.0.0.1", "localhost"))
    assert (await flight.call("/flight/book", {}, token=token)).status == 200


async def test_unreachable_certificates_answer_503_so_the_caller_retries(
    start: StartParticipant, session: aiohttp.ClientSession, authority: TokenAuthority
) -> None:
    hotel = Caller(session, authority, await start("hotel", certs_url="http://127.0.0.1:9/certs"))
    reply = await hotel.call("/hotel/reserve", {}, step="reserve_hotel")
    assert reply.status == 503


async def test_payment_requires_the_api_key_it_was_given(payment: Caller) -> None:
    assert (await payment.call("/payment/charge", {"amount": 10}, api_key=None)).status == 403
    assert (await payment.call("/payment/charge", {"amount": 10}, api_key="wrong")).status == 403
    ok = await payment.call("/payment/charge", {"amount": 10, "currency": "EUR"})
    assert ok.status == 200 and ok.body["charge_id"].startswith("CH-") and ok.body["amount"] == 10


async def test_payment_never_logs_nor_records_its_api_key(
    payment: Caller, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    await payment.call("/payment/charge", {"amount": 10}, api_key="wrong-key-value")
    await payment.call("/payment/charge", {"amount": 10})
    seen = json.dumps(await payment.calls()) + json.dumps((await payment.control("state")).body) + caplog.text
    assert caplog.text
    assert API_KEY not in seen and "wrong-key-value" not in seen


async def test_payment_refuses_a_non_positive_amount_as_a_business_failure(payment: Caller) -> None:
    reply = await payment.call("/payment/charge", {"amount": 0})
    assert reply.status == 422


async def test_a_payload_can_make_payment_decline(payment: Caller) -> None:
    reply = await payment.call("/payment/charge", {"amount": 420, "simulate": "decline"})
    assert reply == Reply(409, {"error": "CARD_DECLINED", "message": "card declined"})
    assert (await payment.call("/payment/charge", {"amount": 420, "simulate": "decline"})) == reply
    assert (await payment.control("state")).body["resources"] == {}


async def test_a_payload_can_fail_the_first_attempts_transiently(
    start: StartParticipant, session: aiohttp.ClientSession, authority: TokenAuthority
) -> None:
    hotel = Caller(session, authority, await start("hotel"))
    payload = {"city": "Lisbon", "simulate": {"result": "ERROR", "status": 503, "times": 2}}
    statuses = [(await hotel.call("/hotel/reserve", payload, step="reserve_hotel")).status for _ in range(4)]
    assert statuses == [503, 503, 200, 200]
    assert [c["effect"] for c in await hotel.calls()] == [False, False, True, False]


@pytest.mark.parametrize(
    ("result", "status"), [("FAILURE", 409), ("ONGOING", 425), ("ERROR", 500), ("SUCCESS", 200)]
)
async def test_the_switch_makes_the_next_call_answer_as_dtm_does(
    flight: Caller, result: str, status: int
) -> None:
    assert (await flight.control("next", {"result": result})).status == 200
    assert (await flight.call("/flight/book", {}, saga="s-1")).status == status
    assert (await flight.call("/flight/book", {}, saga="s-2")).status == 200


async def test_the_switch_counts_calls_and_transient_answers_are_not_replayed(flight: Caller) -> None:
    await flight.control("next", {"result": "ONGOING", "count": 2})
    statuses = [(await flight.call("/flight/book", {})).status for _ in range(3)]
    assert statuses == [425, 425, 200]
    assert [c["effect"] for c in await flight.calls()] == [False, False, True]


async def test_the_switch_can_target_compensations_only(flight: Caller) -> None:
    await flight.control("next", {"result": "ERROR", "action": "compensate"})
    assert (await flight.call("/flight/book", {})).status == 200
    assert (await flight.call("/flight/cancel", {}, action="compensate")).status == 500
    assert (await flight.call("/flight/cancel", {}, action="compensate")).status == 200


async def test_a_switched_success_overrides_a_declining_payload(payment: Caller) -> None:
    await payment.control("next", {"result": "SUCCESS"})
    reply = await payment.call("/payment/charge", {"amount": 5, "simulate": "decline"})
    assert reply.status == 200 and reply.body["status"] == "charged"


async def test_hang_outlasts_the_callers_timeout_and_shows_as_unanswered(flight: Caller) -> None:
    await flight.control("next", {"result": "HANG", "seconds": 30})
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        await flight.call("/flight/book", {}, timeout=0.3)
    assert time.monotonic() - started < 5
    calls = await flight.calls()
    assert [(c["status"], c["effect"], c["outcome"]) for c in calls] == [(None, False, "injected HANG (30s)")]
    assert (await flight.call("/flight/book", {})).status == 200


async def test_a_short_hang_answers_503_when_it_gives_up(flight: Caller) -> None:
    await flight.control("next", {"result": "HANG", "seconds": 0.2})
    reply = await flight.call("/flight/book", {})
    assert reply.status == 503 and reply.body["error"] == "HANG"


async def test_the_switch_refuses_an_unknown_result(flight: Caller) -> None:
    reply = await flight.control("next", {"result": "MAYBE"})
    assert reply.status == 400 and "MAYBE" in reply.body["message"]
    assert (await flight.control("next", {"result": "ERROR", "action": "undo"})).status == 400


async def test_reset_forgets_calls_answers_barrier_and_switch(flight: Caller) -> None:
    await flight.call("/flight/cancel", {}, action="compensate")
    await flight.control("next", {"result": "ERROR"})
    assert (await flight.control("reset")).status == 200
    assert await flight.calls() == []
    assert (await flight.call("/flight/book", {})).status == 200


async def test_a_call_without_an_idempotency_key_is_refused(flight: Caller) -> None:
    reply = await flight.call("/flight/book", {}, key=None)
    assert reply.status == 400 and "Idempotency-Key" in reply.body["message"]


async def test_a_lost_response_is_simulated_by_failing_after_the_effect(flight: Caller) -> None:
    await flight.control("next", {"result": "ERROR", "after_effect": True})
    lost = await flight.call("/flight/book", {"from": "AMS"})
    retried = await flight.call("/flight/book", {"from": "AMS"})
    assert lost.status == 500 and retried.status == 200
    calls = await flight.calls()
    assert [(c["status"], c["effect"]) for c in calls] == [(500, True), (200, False)]
    assert calls[0]["outcome"] == "booked, then injected ERROR"
    state = (await flight.control("state")).body
    assert list(state["resources"]) == [retried.body["booking_id"]]


async def test_a_payload_can_hang_after_the_effect_once(
    start: StartParticipant, session: aiohttp.ClientSession, authority: TokenAuthority
) -> None:
    hotel = Caller(session, authority, await start("hotel"))
    payload = {
        "city": "Porto",
        "simulate": {"result": "HANG", "seconds": 30, "times": 1, "after_effect": True},
    }
    with pytest.raises(asyncio.TimeoutError):
        await hotel.call("/hotel/reserve", payload, step="reserve_hotel", timeout=0.3)
    retried = await hotel.call("/hotel/reserve", payload, step="reserve_hotel")
    assert retried.status == 200
    assert [(c["status"], c["effect"]) for c in await hotel.calls()] == [(None, True), (200, False)]
