"""Demo participant services for a trip booking (flight, hotel, payment) that follow the saga participant
protocol on the ``saga_participant`` SDK: idempotent by ``Idempotency-Key`` and a DTM-style barrier
between a step's execute and compensate (its ``Barrier``), OIDC ID tokens verified on every business call
(its ``TokenVerifier``), ``GET /_saga/effects``, an API key on payment, and DTM-style failure injection.

The same services run on three web frameworks, through the SDK's adapter for each: aiohttp (``app.py``,
the default), FastAPI under uvicorn (``asgi.py``) and Flask under functions-framework (``functions.py``,
one function per service). Only that layer differs: the request pipeline (``pipeline.py``), the control
endpoints (``control.py``), the business decision (``services.py``) and the state (``state.py``) are
shared. ``python -m examples.participants --framework ...`` runs any of them.
"""

from __future__ import annotations

from examples.participants.app import create_app
from examples.participants.pipeline import ParticipantConfig
from examples.participants.server import FRAMEWORKS, RunningParticipant, start_participant
from examples.participants.services import SERVICES, ServiceSpec

__all__ = [
    "FRAMEWORKS",
    "SERVICES",
    "ParticipantConfig",
    "RunningParticipant",
    "ServiceSpec",
    "create_app",
    "start_participant",
]
