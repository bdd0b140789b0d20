"""Participants for the tests: one flight-booking business on the SDK behind each framework adapter,
and deliberately broken ones written without it, each breaking exactly one rule of the protocol."""

from __future__ import annotations

import asyncio
import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

import fastapi
import flask
from aiohttp import web
from saga_participant import (
    Answer,
    BarrierStore,
    Participant,
    SagaCall,
    TokenError,
    TokenPolicy,
    TokenVerifier,
    business_failure,
    success,
)
from saga_participant.adapters import aiohttp as aiohttp_adapter
from saga_participant.adapters import flask as flask_adapter
from saga_participant.adapters import starlette as starlette_adapter

from tests.participant.servers import ORCHESTRATOR, Metadata

EXECUTE, COMPENSATE = "/flight/book", "/flight/cancel"
GOOD_PAYLOAD = {"from": "AMS", "to": "LIS"}
FAILING_PAYLOAD = {"from": "AMS", "to": "ATLANTIS"}


def policy(metadata: Metadata, origin: str) -> TokenPolicy:
    return TokenPolicy(audiences=(origin,), service_accounts=(ORCHESTRATOR,), certs_url=metadata.certs_url)


@dataclass
class Flights:
    """The business behind the SDK: bookings in memory. The barrier guarantees each runs at most once
    per step; this only books and cancels."""

    bookings: dict[str, str] = field(default_factory=dict)
    numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    guard: threading.Lock = field(default_factory=threading.Lock)

    def book(self, call: SagaCall) -> Answer:
        payload = call.payload if isinstance(call.payload, dict) else {}
        if payload.get("to") == "ATLANTIS":
            return business_failure("NO_ROUTE", "no flights to ATLANTIS", status=422)
        with self.guard:
            booking = f"FL-{next(self.numbers)}"
            self.bookings[booking] = "booked"
        return success({"booking_id": booking, "status": "booked"})

    def cancel(self, call: SagaCall) -> Answer:
        booking = call.payload.get("booking_id") if isinstance(call.payload, dict) else None
        with self.guard:
            if self.bookings.get(booking or "") != "booked":
                return success({"booking_id": booking, "status": "nothing_to_undo"}, effect=False)
            self.bookings[booking or ""] = "cancelled"
        return success({"booking_id": booking, "status": "cancelled"})


def sdk_participant(metadata: Metadata, origin: str, store: BarrierStore, *, use_async: bool) -> Participant:
    participant = Participant(auth=policy(metadata, origin), store=store, effects_endpoint=True)
    flights = Flights()
    if use_async:

        @participant.execute
        async def book(call: SagaCall) -> Answer:
            await asyncio.sleep(0.01)  # an awaited call to a real system would be here
            return flights.book(call)

        @participant.compensate
        async def cancel(call: SagaCall) -> Answer:
            return flights.cancel(call)

    else:
        participant.execute(flights.book)
        participant.compensate(flights.cancel)
    return participant


def flask_app(participant: Participant) -> flask.Flask:
    app = flask.Flask("flights")
    flask_adapter.mount(app, participant, execute=EXECUTE, compensate=COMPENSATE)
    return app


def fastapi_app(participant: Participant) -> fastapi.FastAPI:
    app = fastapi.FastAPI()
    starlette_adapter.mount(app, participant, execute=EXECUTE, compensate=COMPENSATE)
    return app


def aiohttp_app(participant: Participant) -> web.Application:
    app = web.Application()
    aiohttp_adapter.mount(app, participant, execute=EXECUTE, compensate=COMPENSATE)
    return app


@dataclass(frozen=True)
class Flaws:
    dedupe: bool = True  # False: every delivery applies the effect again
    refuse_late_execute: bool = True  # False: an execute after its compensation is applied
    failure_status: int = 422  # 500: a business failure answered as a server error


class BrokenFlights:
    """A hand-written participant with the given flaws; otherwise it keeps the rules (token check, null
    compensation, effects endpoint), so certify must name exactly the broken rule."""

    def __init__(self, metadata: Metadata, origin: str, flaws: Flaws) -> None:
        self.verifier = TokenVerifier(policy(metadata, origin))
        self.flaws = flaws
        self.answers: dict[str, tuple[int, Any]] = {}
        self.executed: dict[tuple[str, str], str] = {}
        self.compensated: set[tuple[str, str]] = set()
        self.effects: dict[str, list[dict[str, str]]] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(EXECUTE, self.call)
        app.router.add_post(COMPENSATE, self.call)
        app.router.add_get("/_saga/effects", self.list_effects)
        return app

    async def list_effects(self, request: web.Request) -> web.Response:
        return web.json_response({"effects": self.effects.get(request.query.get("saga_id", ""), [])})

    async def call(self, request: web.Request) -> web.Response:
        try:
            await asyncio.to_thread(self.verifier.verify_header, request.headers.get("Authorization"))
        except TokenError as error:
            return web.json_response({"error": "UNAUTHENTICATED"}, status=error.status)
        payload = await request.json()
        # From the lookup to the remembered answer without an await: concurrent duplicates are decided
        # one after the other (a check, an await, then the write would let them all through).
        key = request.headers["Idempotency-Key"]
        if self.flaws.dedupe and key in self.answers:
            status, body = self.answers[key]
            return web.json_response(body, status=status)
        status, body = self.decide(request.headers, request.path == EXECUTE, payload)
        self.answers[key] = (status, body)
        return web.json_response(body, status=status)

    def decide(self, headers: Any, execute: bool, payload: dict[str, Any]) -> tuple[int, Any]:
        saga, step, key = headers["X-Saga-Id"], headers["X-Saga-Step"], headers["Idempotency-Key"]
        pair = (saga, step)
        applied = {"step": step, "action": "execute" if execute else "compensate", "idempotency_key": key}
        if execute:
            if pair in self.compensated and self.flaws.refuse_late_execute:
                return 409, {"error": "ALREADY_COMPENSATED"}
            if payload.get("to") == "ATLANTIS":
                return self.flaws.failure_status, {"error": "NO_ROUTE"}
            self.executed[pair] = f"FL-{len(self.executed) + 1}"
            self.effects.setdefault(saga, []).append(applied)
            return 200, {"booking_id": self.executed[pair]}
        self.compensated.add(pair)
        if pair not in self.executed:
            return 200, {"status": "nothing_to_undo"}
        self.effects.setdefault(saga, []).append(applied)
        return 200, {"status": "cancelled"}
