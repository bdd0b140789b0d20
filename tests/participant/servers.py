"""Real servers for the participant SDK's tests, each on a free loopback port in a background thread:
the local cloud's metadata server (mints ID tokens, publishes their certificates), aiohttp apps, Flask
(werkzeug) and ASGI (uvicorn) apps, and a throwaway PostgreSQL cluster (initdb + pg_ctl in a temporary
directory, as a non-root user when the tests run as root)."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import uvicorn
from aiohttp import web
from werkzeug.serving import make_server

from localcloud.auth import TokenAuthority
from localcloud.metadata.app import MetadataIdentity, create_app

T = TypeVar("T")
PROJECT = "certify-project"
ORCHESTRATOR = f"saga-runtime@{PROJECT}.iam.gserviceaccount.com"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BackgroundLoop:
    """An event loop on its own thread, for aiohttp servers that synchronous tests call."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def serve(self, app: web.Application, port: int = 0) -> tuple[str, Callable[[], None]]:
        """Serve ``app`` (port 0: a free one); returns its origin and how to stop it."""

        async def start() -> tuple[web.AppRunner, int]:
            runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", port)
            await site.start()
            return runner, int(runner.addresses[0][1])

        runner, port = self.run(start())
        return f"http://127.0.0.1:{port}", lambda: self.run(runner.cleanup())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@dataclass
class Metadata:
    """The local cloud's metadata server: ``host`` (``127.0.0.1:PORT``) and its certificates URL."""

    host: str
    authority: TokenAuthority

    @property
    def certs_url(self) -> str:
        return f"http://{self.host}/oauth2/v1/certs"

    def token(self, audience: str, email: str = ORCHESTRATOR) -> str:
        return self.authority.mint_id_token(audience, email)


def start_metadata(
    background: BackgroundLoop, authority: TokenAuthority
) -> tuple[Metadata, Callable[[], None]]:
    identity = MetadataIdentity(project_id=PROJECT, service_account_email=ORCHESTRATOR)
    origin, stop = background.serve(create_app(identity, authority))
    return Metadata(origin.removeprefix("http://"), authority), stop


@contextlib.contextmanager
def serve_wsgi(app: Any, port: int = 0) -> Iterator[str]:
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@contextlib.contextmanager
def serve_asgi(app: Any, port: int = 0) -> Iterator[str]:
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def postgres_bin() -> str | None:
    """The folder of Debian's PostgreSQL server programs (newest version), or of ``initdb`` on PATH."""
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(os.path.realpath(found))
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[-3]))
    return os.path.dirname(versions[-1]) if versions else None


def _as_postgres_user() -> tuple[list[str], int | None]:
    """``initdb`` refuses to run as root: then the cluster belongs to the ``postgres`` account (Debian's
    package creates it) or ``nobody``."""
    if os.geteuid() != 0:
        return [], None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return ["runuser", "-u", name, "--"], pwd.getpwnam(name).pw_uid
    raise RuntimeError("running as root and no postgres or nobody account to run PostgreSQL as")


@contextlib.contextmanager
def postgres_cluster() -> Iterator[str]:
    """A running PostgreSQL server in a temporary directory; yields its connection string."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL's server programs (Debian package postgresql) are not installed")
    prefix, uid = _as_postgres_user()
    root = tempfile.mkdtemp(prefix="saga-pg-")
    if uid is not None:
        os.chown(root, uid, -1)
    data, port = os.path.join(root, "data"), free_port()

    def run(*command: str) -> None:
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)

    try:
        run(f"{bin_dir}/initdb", "-D", data, "-U", "saga", "--auth=trust", "--no-sync", "-E", "UTF8")
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        run(f"{bin_dir}/pg_ctl", "-D", data, "-o", options, "-l", f"{root}/log", "-w", "-t", "60", "start")
        try:
            yield f"host=127.0.0.1 port={port} user=saga dbname=postgres"
        finally:
            run(f"{bin_dir}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
