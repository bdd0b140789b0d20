"""``python -m localcloud.pubsub [HOST:PORT]``: serve only the Pub/Sub emulator (default:
$PUBSUB_EMULATOR_HOST). Prints ``pubsub ready: HOST:PORT`` once it accepts connections."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import sys

from localcloud.config import LocalCloudConfig
from localcloud.pubsub.server import start
from localcloud.runtime import Context


async def _serve(address: str | None) -> None:
    config = LocalCloudConfig.from_env()
    if address:
        config = dataclasses.replace(config, pubsub=address)
    service = await start(Context(config=config))
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    print(f"pubsub ready: {service.address}", flush=True)
    try:
        await stop.wait()
    finally:
        await service.stop()


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(_serve(argv[0] if argv else None))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
