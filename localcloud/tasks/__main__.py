"""``python -m localcloud.tasks [HOST:PORT]``: serve only the Cloud Tasks emulator (default: $CLOUD_TASKS_EMULATOR_HOST)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import sys

from localcloud.config import LocalCloudConfig
from localcloud.runtime import Context
from localcloud.tasks.server import start


async def _serve(address: str | None) -> None:
    config = LocalCloudConfig.from_env()
    if address:
        config = dataclasses.replace(config, tasks=address)
    service = await start(Context(config=config))
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    print(f"tasks ready: {service.address}", flush=True)
    try:
        await stop.wait()
    finally:
        await service.stop()


def main(argv: list[str]) -> int:
    asyncio.run(_serve(argv[0] if argv else None))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
