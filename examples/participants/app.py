"""A demo participant on aiohttp: every route hands the SDK's aiohttp adapter's ``HttpRequest`` to the
framework-neutral pipeline (``pipeline.py``, where the request handling is described) and sends back its
``HttpResponse`` through the same adapter. The pipeline blocks, so business calls and the effects run in
a worker thread; the control endpoints answer on the event loop. Stopping the app ends any HANG.
"""

from __future__ import annotations

from aiohttp import web
from saga_participant import EFFECTS_PATH, is_final
from saga_participant.adapters import aiohttp as saga_aiohttp

from examples.participants.control import ENDPOINTS
from examples.participants.pipeline import (
    API_KEY_HEADER,
    CONTROL_PREFIX,
    DEFAULT_HANG_SECONDS,
    GOOGLE_CERTS_URL,
    METHODS,
    Participant,
    ParticipantConfig,
    configure_logging,
    loopback_audiences,
    new_ledger,
)
from examples.participants.state import Ledger

PARTICIPANT_KEY = web.AppKey("participant", Participant)


async def _serve(request: web.Request) -> web.Response:
    participant = request.app[PARTICIPANT_KEY]
    response = await participant.serve_async(await saga_aiohttp.to_request(request))
    return saga_aiohttp.to_response(response)


async def _on_shutdown(app: web.Application) -> None:
    app[PARTICIPANT_KEY].stopping.set()


def create_app(config: ParticipantConfig, ledger: Ledger | None = None) -> web.Application:
    """One participant service. ``ledger`` may be shared with a test to look at the state directly."""
    participant = Participant(config, ledger if ledger is not None else new_ledger(config))
    app = web.Application()
    app[PARTICIPANT_KEY] = participant
    app.on_shutdown.append(_on_shutdown)
    for name, (method, _) in ENDPOINTS.items():
        app.router.add_route(method, CONTROL_PREFIX + name, _serve)
    app.router.add_get(EFFECTS_PATH, _serve)
    for path in (participant.spec.execute_path, participant.spec.compensate_path):
        for method in METHODS:
            app.router.add_route(method, path, _serve)
    return app


__all__ = [
    "API_KEY_HEADER",
    "DEFAULT_HANG_SECONDS",
    "GOOGLE_CERTS_URL",
    "ParticipantConfig",
    "configure_logging",
    "create_app",
    "is_final",
    "loopback_audiences",
]
