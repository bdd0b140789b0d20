"""Time as an injectable object, so retry schedules and timeouts are tested without sleeping.

``SystemClock`` is the real thing. ``ManualClock`` only moves when a test calls ``advance``; coroutines
sleeping on it wake, in deadline order, once the clock passes their deadline.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol

from google.protobuf import timestamp_pb2


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock that stands still until ``advance`` is called. Use from the event loop's thread."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), future))
        await future

    @property
    def pending_sleepers(self) -> int:
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def next_deadline(self) -> float | None:
        live = [d for d, _, f in self._sleepers if not f.done()]
        return min(live) if live else None

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking every sleeper whose deadline is reached, in order, and letting
        each run until it blocks again before the clock moves further."""
        target = self._now + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = heapq.heappop(self._sleepers)
            if future.done():
                continue
            self._now = max(self._now, deadline)
            future.set_result(None)
            for _ in range(20):  # let the woken coroutine and whatever it triggers run
                await asyncio.sleep(0)
        self._now = target
        for _ in range(5):
            await asyncio.sleep(0)


async def sleep_until(clock: Clock, when: float) -> None:
    """Sleep on ``clock`` until its reading is ``when``.

    The remaining time is read when the sleep starts, not when it is scheduled: a sleeper made with
    ``create_task`` starts a turn of the loop later, and a ``ManualClock`` advanced in that turn would
    otherwise push the wake-up back by the amount it moved.
    """
    await clock.sleep(when - clock.now())


def timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    """A protobuf ``Timestamp`` of ``seconds`` since the epoch (a clock's reading), to the nanosecond."""
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp
