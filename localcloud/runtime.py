"""What the emulators share when they run in one process, and the shape each one presents to ``serve``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

from localcloud.auth import TokenAuthority
from localcloud.clock import Clock, SystemClock
from localcloud.config import LocalCloudConfig
from localcloud.quotas import QuotaConfig, Quotas


@dataclass
class Context:
    config: LocalCloudConfig
    clock: Clock = field(default_factory=SystemClock)
    authority: TokenAuthority = field(default_factory=TokenAuthority)

    @cached_property
    def quotas(self) -> Quotas:
        """The rate quotas of ``config.quotas`` (``LOCALCLOUD_QUOTAS``), shared by the emulators started
        with this context; raises ``QuotaConfigError`` for a bad value."""
        return Quotas(QuotaConfig.parse(self.config.quotas, self.config.location), self.clock)


class RunningService(Protocol):
    """A started emulator. ``address`` is the ``host:port`` it actually bound."""

    name: str
    address: str

    async def stop(self) -> None: ...


ServiceStarter = Callable[[Context], Awaitable[RunningService]]


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM; install it before starting anything, so a signal during
    start-up is not lost."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop


def serve_one(starter: ServiceStarter, config_field: str, argv: list[str]) -> int:
    """``python -m localcloud.<service> [HOST:PORT]``: one emulator in the foreground until interrupted.
    The address defaults to the service's variable (see ``LocalCloudConfig``); prints ``<name> ready:
    <host:port>`` once it accepts connections."""

    async def run() -> None:
        stop = stop_on_signals()
        config = LocalCloudConfig.from_env()
        if argv:
            config = dataclasses.replace(config, **{config_field: argv[0]})
        service = await starter(Context(config=config))
        print(f"{service.name} ready: {service.address}", flush=True)
        try:
            await stop.wait()
        finally:
            await service.stop()

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(run())
    return 0
