"""Start participant services on real sockets (used by ``__main__`` and by tests), on each web layer:
aiohttp (``app.py``) on this event loop, FastAPI (``asgi.py``) under uvicorn on a thread of its own, and
functions-framework (``functions.py``), which runs as a process of its own (``functions_framework_argv``)."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from examples.participants.app import create_app
from examples.participants.pipeline import (
    API_KEY_ENV,
    AUDIENCES_ENV,
    CERTS_URL_ENV,
    DEFAULT_HANG_SECONDS,
    GOOGLE_CERTS_URL,
    HANG_SECONDS_ENV,
    MAX_CONCURRENT_CALLS,
    STATE_DIR_ENV,
    ParticipantConfig,
    loopback_audiences,
    new_ledger,
)
from examples.participants.state import Ledger

FRAMEWORKS = ("aiohttp", "fastapi", "functions-framework")
DEFAULT_FRAMEWORK = "aiohttp"
FUNCTIONS_SOURCE = Path(__file__).with_name("functions.py")
# The folder that holds the ``examples`` package (a clone's root, or the installed data directory).
EXAMPLES_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RunningParticipant:
    service: str
    url: str
    config: ParticipantConfig
    ledger: Ledger
    stop_serving: Callable[[], Awaitable[None]]

    async def stop(self) -> None:
        await self.stop_serving()


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on ``host:port`` (0 = a free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


def make_config(
    service: str,
    host: str,
    port: int,
    *,
    certs_url: str = GOOGLE_CERTS_URL,
    api_key: str | None = None,
    hang_seconds: float = DEFAULT_HANG_SECONDS,
    audiences: tuple[str, ...] = (),
    state_dir: str | None = None,
) -> ParticipantConfig:
    """Token audiences default to the bound origin (and its loopback alias); ``state_dir`` None keeps
    the state in memory."""
    return ParticipantConfig(
        service=service,
        audiences=audiences or loopback_audiences(host, port),
        certs_url=certs_url,
        api_key=api_key,
        hang_seconds=hang_seconds,
        state_dir=state_dir,
    )


async def start_participant(
    service: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    framework: str = DEFAULT_FRAMEWORK,
    **options: Any,
) -> RunningParticipant:
    """Bind ``host:port`` (0 = a free port) and serve ``service`` on ``framework`` (``aiohttp`` or
    ``fastapi``); ``options`` as for ``make_config``."""
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    try:
        config = make_config(service, host, bound, **options)
        if framework == "fastapi":
            return await _start_asgi(config, sock, f"http://{host}:{bound}")
        if framework != "aiohttp":
            raise ValueError(f"{framework} runs as a process of its own (functions_framework_argv)")
        app = create_app(config, ledger := new_ledger(config))
    except Exception:
        sock.close()
        raise
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return RunningParticipant(service, f"http://{host}:{bound}", config, ledger, runner.cleanup)


async def _start_asgi(config: ParticipantConfig, sock: socket.socket, url: str) -> RunningParticipant:
    try:
        from examples.participants.asgi import serve_in_thread  # FastAPI only when asked for
    except ImportError as error:
        raise RuntimeError(f"the fastapi framework needs FastAPI and uvicorn installed ({error})") from error

    running = await asyncio.to_thread(serve_in_thread, config, sock)
    ledger = running.participant.ledger
    return RunningParticipant(config.service, url, config, ledger, lambda: asyncio.to_thread(running.stop))


def functions_framework_argv(service: str, host: str, port: int) -> list[str]:
    """``functions-framework --source .../functions.py --target <service> ...`` of this environment."""
    script = Path(sys.executable).parent / "functions-framework"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "functions_framework"]
    return [
        *command,
        *("--source", str(FUNCTIONS_SOURCE), "--target", service, "--signature-type", "http"),
        *("--host", host, "--port", str(port)),
    ]


def functions_framework_env(config: ParticipantConfig, base: dict[str, str]) -> dict[str, str]:
    """``base`` plus what ``functions.config_from_env`` reads, and ``examples`` importable."""
    path = [str(EXAMPLES_ROOT), *filter(None, [base.get("PYTHONPATH")])]
    env = {**base, "PYTHONPATH": os.pathsep.join(path), CERTS_URL_ENV: config.certs_url}
    env.update({AUDIENCES_ENV: ",".join(config.audiences), HANG_SECONDS_ENV: str(config.hang_seconds)})
    # gunicorn's threads (functions-framework's default: 4 per CPU); each HANG holds one until it ends.
    env.setdefault("THREADS", str(MAX_CONCURRENT_CALLS))
    if config.api_key:
        env[API_KEY_ENV] = config.api_key
    if config.state_dir:
        env[STATE_DIR_ENV] = config.state_dir
    return env
