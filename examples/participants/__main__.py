"""``python -m examples.participants``: run the demo trip-booking participants.

    python -m examples.participants --service flight --port 9001
    python -m examples.participants --service all --port 9001     # flight 9001, hotel 9002, payment 9003

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

from examples.participants.app import DEFAULT_HANG_SECONDS, GOOGLE_CERTS_URL, configure_logging
from examples.participants.server import RunningParticipant, start_participant
from examples.participants.services import SERVICES

API_KEY_ENV = "PAYMENT_API_KEY"
CERTS_URL_ENV = "OIDC_CERTS_URL"


async def run(args: argparse.Namespace) -> int:
    names = list(SERVICES) if args.service == "all" else [args.service]
    api_key = os.environ.get(API_KEY_ENV) or None
    if "payment" in names and not api_key:
        print(
            f"the payment service needs its API key in the environment variable {API_KEY_ENV}",
            file=sys.stderr,
        )
        return 2
    started: list[RunningParticipant] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        for offset, name in enumerate(names):
            port = args.port + offset if args.port else 0
            running = await start_participant(
                name,
                host=args.host,
                port=port,
                certs_url=args.certs_url,
                api_key=api_key if name == "payment" else None,
                hang_seconds=args.hang_seconds,
                audiences=tuple(args.audience),
            )
            started.append(running)
            print(f"participant {name} ready on {running.url}", flush=True)
        await stop.wait()
    finally:
        for running in reversed(started):
            await running.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m examples.participants",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--service", choices=[*SERVICES, "all"], default="all")
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
    args = parser.parse_args(argv)
    configure_logging()
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
