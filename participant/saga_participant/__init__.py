"""Make a service a safe saga participant: OIDC token check, the sub-transaction barrier (a repeated
``Idempotency-Key`` gets the same answer and applies nothing; a compensation before its execute is a
recorded no-op; an execute after its compensation is refused), answers in the protocol's terms, and
``GET /_saga/effects`` for ``saga_participant.certify``.

    participant = Participant(auth=TokenPolicy(audiences=("https://flights.example.com",),
                                               service_accounts=("saga-runtime@p.iam.gserviceaccount.com",)),
                              store=SQLiteStore("barrier.db"))

    @participant.execute
    def book(call: SagaCall) -> Answer:
        return success({"booking_id": create_booking(call.payload)})

    @participant.compensate
    def cancel(call: SagaCall) -> Answer:
        cancel_booking(call.payload["booking_id"])
        return success({"status": "cancelled"})

then ``saga_participant.adapters.{flask,starlette,aiohttp}.mount(app, participant, execute=..., compensate=...)``.
"""

from __future__ import annotations

from saga_participant.auth import GOOGLE_CERTS_URL, TokenError, TokenPolicy, TokenVerifier
from saga_participant.barrier import Barrier, BarrierRecord, BarrierStore, Effect, PairTransaction
from saga_participant.core import EFFECTS_PATH, HttpRequest, HttpResponse, Participant
from saga_participant.protocol import (
    Action,
    Answer,
    CallError,
    SagaCall,
    business_failure,
    is_final,
    read_call,
    retry_later,
    success,
)
from saga_participant.stores.sqlite import SQLiteStore

__all__ = [
    "EFFECTS_PATH",
    "GOOGLE_CERTS_URL",
    "Action",
    "Answer",
    "Barrier",
    "BarrierRecord",
    "BarrierStore",
    "CallError",
    "Effect",
    "HttpRequest",
    "HttpResponse",
    "PairTransaction",
    "Participant",
    "SQLiteStore",
    "SagaCall",
    "TokenError",
    "TokenPolicy",
    "TokenVerifier",
    "business_failure",
    "is_final",
    "read_call",
    "retry_later",
    "success",
]
