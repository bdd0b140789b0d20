"""``ManualClock`` and ``sleep_until``: sleepers wake at the clock reading they asked for."""

from __future__ import annotations

import asyncio

from localcloud.clock import ManualClock, sleep_until


async def test_manual_clock_wakes_sleepers_in_deadline_order() -> None:
    clock = ManualClock(start=100.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    tasks = [asyncio.create_task(sleeper("late", 30)), asyncio.create_task(sleeper("early", 10))]
    await asyncio.sleep(0)
    await clock.advance(9)
    assert woke == []
    await clock.advance(25)
    assert woke == [("early", 110.0), ("late", 130.0)]
    assert clock.now() == 134.0
    await asyncio.gather(*tasks)


async def test_sleep_until_takes_its_deadline_from_the_reading_it_asked_for() -> None:
    # The sleeper task has not started when the clock moves: a relative sleep computed up front
    # would wake 9 s late, at 119.
    clock = ManualClock(start=100.0)
    sleeper = asyncio.create_task(sleep_until(clock, 110.0))
    await clock.advance(9)
    assert not sleeper.done()
    await clock.advance(1)
    assert sleeper.done()
    assert clock.now() == 110.0


async def test_sleep_until_a_passed_reading_returns_at_once() -> None:
    clock = ManualClock(start=100.0)
    await asyncio.wait_for(sleep_until(clock, 50.0), timeout=1)
    assert clock.pending_sleepers == 0
