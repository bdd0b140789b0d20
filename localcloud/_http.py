"""Kept-alive HTTP client connections for the emulators that call out (Cloud Tasks dispatch, Pub/Sub push).

A connect and a close per request cost more CPU than the rest of a delivery, so connections are kept
alive, but one is reused only while it has been idle at most ``IDLE_REUSE_SECONDS`` (gunicorn, which
serves Cloud Run functions locally, closes idle ones after 2 s; uvicorn and Node after 5 s) and only if,
checked just before the request is written, the peer has not closed it nor sent anything on it.
"""

from __future__ import annotations

import select
import weakref
from typing import Any

import aiohttp

IDLE_REUSE_SECONDS = 1.0


def peer_closed(transport: Any) -> bool:
    """Whether an idle client connection is unusable: the peer closed it, reset it, or sent bytes no
    request asked for. Without ``poll`` (not on every platform) only the event loop's view counts."""
    if transport is None or transport.is_closing():
        return True
    sock = transport.get_extra_info("socket")
    if sock is None or not hasattr(select, "poll"):
        return False
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN | getattr(select, "POLLRDHUP", 0))
    return bool(poller.poll(0))


class KeepAliveConnector(aiohttp.TCPConnector):
    """A pool that hands out a kept-alive connection only after ``peer_closed`` says it is still good;
    idle connections are dropped after ``idle_seconds``."""

    def __init__(self, idle_seconds: float = IDLE_REUSE_SECONDS) -> None:
        super().__init__(limit=0, keepalive_timeout=idle_seconds)
        self._used: weakref.WeakSet[Any] = weakref.WeakSet()
        self.discarded = 0

    async def connect(self, req: Any, traces: Any, timeout: Any) -> Any:
        for _ in range(10_000):  # the pool drains of bad connections, then a fresh one comes
            connection = await super().connect(req, traces, timeout)
            protocol = connection.protocol
            if protocol is None or protocol not in self._used:
                if protocol is not None:
                    self._used.add(protocol)
                return connection
            if not peer_closed(protocol.transport):
                return connection
            self.discarded += 1
            connection.close()
        raise aiohttp.ClientConnectionError("no usable connection")
