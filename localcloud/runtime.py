"""What the emulators share when they run in one process, and the shape each one presents to ``serve``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from localcloud.auth import TokenAuthority
from localcloud.clock import Clock, SystemClock
from localcloud.config import LocalCloudConfig


@dataclass
class Context:
    config: LocalCloudConfig
    clock: Clock = field(default_factory=SystemClock)
    authority: TokenAuthority = field(default_factory=TokenAuthority)


class RunningService(Protocol):
    """A started emulator. ``address`` is the ``host:port`` it actually bound."""

    name: str
    address: str

    async def stop(self) -> None: ...


ServiceStarter = Callable[[Context], Awaitable[RunningService]]
