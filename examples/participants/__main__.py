"""``python -m examples.participants``: run the demo trip-booking participants.

    python -m examples.participants --service flight --port 9001
    python -m examples.participants --service all --port 9001     # flight 9001, hotel 9002, payment 9003
    python -m examples.participants --service hotel --port 9002 --framework fastapi
    python -m examples.participants --service payment --port 9003 --framework functions-framework

``--framework`` chooses the web layer; the behaviour, the failure injection and the ``/_control``
endpoints are the same on each: ``aiohttp`` (the default), ``fastapi`` (under uvicorn) or
``functions-framework`` (Flask; one function per service, so one ``--service`` at a time: this process
becomes ``functions-framework --source examples/participants/functions.py --target <service>``: it prints
``participant payment starting on http://...`` instead of a ready line; poll ``/_control/health``).

``--state-dir DIR`` keeps each service's barrier, resources and journal in ``DIR/<service>.sqlite3``, so a
restart (even after a SIGKILL) carries on where the service stopped; without it the state is in memory.

``--port 0`` picks free ports. One line per service is printed when it listens:
``participant flight ready on http://127.0.0.1:9001``. The payment service reads its API key from the
environment variable ``PAYMENT_API_KEY`` (never from the command line, never printed). Tokens are
verified against ``--certs-url`` (default: env ``OIDC_CERTS_URL``, else Google's certificates).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from typing import NoReturn

from examples.participants.pipeline import (
    API_KEY_ENV,
    CERTS_URL_ENV,
    DEFAULT_HANG_SECONDS,
    GOOGLE_CERTS_URL,
    STATE_DIR_ENV,
    configure_logging,
)
from examples.participants.server import (
    DEFAULT_FRAMEWORK,
    FRAMEWORKS,
    RunningParticipant,
    bind,
    functions_framework_argv,
    functions_framework_env,
    make_config,
    start_participant,
)
from examples.participants.services import SERVICES


async def run(args: argparse.Namespace, api_key: str | None) -> int:
    names = list(SERVICES) if args.service == "all" else [args.service]
    started: list[RunningParticipant] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        for offset, name in enumerate(names):
            running = await start_participant(
                name,
                host=args.host,
                port=args.port + offset if args.port else 0,
                framework=args.framework,
                certs_url=args.certs_url,
                api_key=api_key if name == "payment" else None,
                hang_seconds=args.hang_seconds,
                audiences=tuple(args.audience),
                state_dir=args.state_dir,
            )
            started.append(running)
            print(f"participant {name} ready on {running.url}", flush=True)
        await stop.wait()
    finally:
        for running in reversed(started):
            await running.stop()
    return 0


def become_function(args: argparse.Namespace, api_key: str | None) -> NoReturn:
    """Replace this process with functions-framework serving ``args.service``'s function."""
    port = args.port
    if not port:  # functions-framework binds by number: pick a free one now
        with bind(args.host, 0) as sock:
            port = sock.getsockname()[1]
    config = make_config(
        args.service,
        args.host,
        port,
        certs_url=args.certs_url,
        api_key=api_key,
        hang_seconds=args.hang_seconds,
        audiences=tuple(args.audience),
        state_dir=args.state_dir,
    )
    argv = functions_framework_argv(args.service, args.host, port)
    print(
        f"participant {args.service} starting on http://{args.host}:{port} (functions-framework)", flush=True
    )
    os.execve(argv[0], argv, functions_framework_env(config, dict(os.environ)))


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples.participants",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--service", choices=[*SERVICES, "all"], default="all")
    parser.add_argument("--framework", choices=FRAMEWORKS, default=DEFAULT_FRAMEWORK)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="port of the (first) service; 0 = free ports")
    parser.add_argument("--certs-url", default=os.environ.get(CERTS_URL_ENV) or GOOGLE_CERTS_URL)
    parser.add_argument(
        "--audience",
        action="append",
        default=[],
        help="accepted token audience (repeatable); default: the service's own origin",
    )
    parser.add_argument(
        "--hang-seconds", type=float, default=DEFAULT_HANG_SECONDS, help="how long HANG hangs"
    )
    parser.add_argument(
        "--state-dir",
        default=os.environ.get(STATE_DIR_ENV) or None,
        help="keep each service's state in <dir>/<service>.sqlite3, across restarts (default: env "
        f"{STATE_DIR_ENV}, else in memory)",
    )
    args = parser.parse_args(argv)
    if args.framework == "functions-framework" and args.service == "all":
        parser.error("functions-framework serves one function per process: choose one --service")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    api_key = os.environ.get(API_KEY_ENV) or None
    if args.service in ("payment", "all") and not api_key:
        print(
            f"the payment service needs its API key in the environment variable {API_KEY_ENV}",
            file=sys.stderr,
        )
        return 2
    if args.framework == "functions-framework":
        become_function(args, api_key)
    configure_logging()
    try:
        return asyncio.run(run(args, api_key))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
