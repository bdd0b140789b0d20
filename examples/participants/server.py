"""Start participant services on real sockets (used by ``__main__`` and by tests)."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from aiohttp import web

from examples.participants.app import (
    DEFAULT_HANG_SECONDS,
    GOOGLE_CERTS_URL,
    ParticipantConfig,
    create_app,
    loopback_audiences,
)
from examples.participants.state import Ledger


@dataclass
class RunningParticipant:
    service: str
    url: str
    config: ParticipantConfig
    ledger: Ledger
    runner: web.AppRunner

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_participant(
    service: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    certs_url: str = GOOGLE_CERTS_URL,
    api_key: str | None = None,
    hang_seconds: float = DEFAULT_HANG_SECONDS,
    audiences: tuple[str, ...] = (),
) -> RunningParticipant:
    """Bind ``host:port`` (0 = a free port) and serve ``service``. Token audiences default to the bound
    origin (and its loopback alias)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.setblocking(False)
    bound = sock.getsockname()[1]
    config = ParticipantConfig(
        service=service,
        audiences=audiences or loopback_audiences(host, bound),
        certs_url=certs_url,
        api_key=api_key,
        hang_seconds=hang_seconds,
    )
    ledger = Ledger()
    try:
        app = create_app(config, ledger)
    except Exception:
        sock.close()
        raise
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return RunningParticipant(
        service=service, url=f"http://{host}:{bound}", config=config, ledger=ledger, runner=runner
    )
