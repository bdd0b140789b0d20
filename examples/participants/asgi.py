"""A demo participant on FastAPI, served by uvicorn: every route hands the SDK's Starlette adapter's
``HttpRequest`` (a FastAPI app is a Starlette app) to the framework-neutral pipeline (``pipeline.py``)
and sends back its ``HttpResponse`` through the same adapter. The pipeline blocks, so business calls and
the effects run in a worker thread; the control endpoints answer on the event loop.

FastAPI is imported here only: the other web layers run without it installed.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI, Request, Response
from saga_participant import EFFECTS_PATH
from saga_participant.adapters import starlette as saga_starlette

from examples.participants.control import ENDPOINTS
from examples.participants.pipeline import (
    CONTROL_PREFIX,
    METHODS,
    Participant,
    ParticipantConfig,
    new_ledger,
)
from examples.participants.state import Ledger

# How long uvicorn lets calls in flight finish once asked to stop (a HANG ends at once then).
GRACEFUL_SHUTDOWN_SECONDS = 2


def create_app(config: ParticipantConfig, ledger: Ledger | None = None) -> FastAPI:
    """One participant service. ``ledger`` may be shared with a test to look at the state directly."""
    participant = Participant(config, ledger if ledger is not None else new_ledger(config))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        participant.stopping.set()

    async def serve(request: Request) -> Response:
        answer = await participant.serve_async(await saga_starlette.to_request(request))
        return saga_starlette.to_response(answer)

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    app.state.participant = participant
    for name, (method, _) in ENDPOINTS.items():
        app.add_api_route(CONTROL_PREFIX + name, serve, methods=[method], include_in_schema=False)
    app.add_api_route(EFFECTS_PATH, serve, methods=["GET"], include_in_schema=False)
    for path in (participant.spec.execute_path, participant.spec.compensate_path):
        app.add_api_route(path, serve, methods=list(METHODS), include_in_schema=False)
    return app


@dataclass
class RunningAsgiParticipant:
    """A uvicorn server on its own thread (and event loop)."""

    participant: Participant
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self, timeout: float = 10.0) -> None:
        self.participant.stopping.set()
        self.server.should_exit = True
        self.thread.join(timeout=timeout)


def serve_in_thread(
    config: ParticipantConfig, sock: socket.socket, *, ready_timeout: float = 30.0
) -> RunningAsgiParticipant:
    """Serve ``config``'s service on the bound ``sock`` with uvicorn; returns once it accepts calls."""
    app = create_app(config)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{config.service}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + ready_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"uvicorn did not start the {config.service} participant")
        time.sleep(0.02)
    return RunningAsgiParticipant(app.state.participant, server, thread)
