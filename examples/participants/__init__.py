"""Demo participant services for a trip booking (flight, hotel, payment) that follow the saga participant
protocol on the ``saga_participant`` SDK: idempotent by ``Idempotency-Key`` and a DTM-style barrier
between a step's execute and compensate (its ``Barrier``), OIDC ID tokens verified on every business call
(its ``TokenVerifier``), ``GET /_saga/effects``, an API key on payment, and DTM-style failure injection.
See ``app.py`` for the request pipeline and ``services.py`` for the endpoints."""

from __future__ import annotations

from examples.participants.app import ParticipantConfig, create_app
from examples.participants.server import RunningParticipant, start_participant
from examples.participants.services import SERVICES, ServiceSpec

__all__ = [
    "SERVICES",
    "ParticipantConfig",
    "RunningParticipant",
    "ServiceSpec",
    "create_app",
    "start_participant",
]
