"""A demo participant with a state directory keeps its barrier, resources and journal across a restart, as a
participant with a database does; and a slow success answers late, before or after its effect."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp

from examples.participants.state import Ledger
from localcloud.auth import TokenAuthority
from tests.unit.examples.test_participants_protocol import Caller, StartParticipant


async def journal(caller: Caller) -> list[dict[str, Any]]:
    async with caller.session.get(caller.participant.url + "/_control/journal") as response:
        assert response.status == 200
        return list(await response.json())


async def test_a_restarted_participant_remembers_answers_resources_barrier_and_journal(
    start: StartParticipant, session: aiohttp.ClientSession, authority: TokenAuthority, tmp_path: Path
) -> None:
    first = Caller(session, authority, await start("flight", state_dir=str(tmp_path)))
    booked = await first.call("/flight/book", {"from": "AMS"})
    early = await first.call("/flight/cancel", {}, step="reserve_seat", action="compensate")
    await first.participant.stop()

    again = Caller(session, authority, await start("flight", state_dir=str(tmp_path)))
    assert await again.call("/flight/book", {"from": "AMS"}) == booked  # replayed, not booked again
    late = await again.call("/flight/book", {}, step="reserve_seat")
    assert (early.status, late.status) == (200, 409)  # the execute after its compensation is refused
    state = (await again.control("state")).body
    assert list(state["resources"]) == [booked.body["booking_id"]]
    entries = await journal(again)
    assert [(e["step"], e["action"], e["effect"], e["outcome"]) for e in entries] == [
        ("book_flight", "execute", True, "booked"),
        ("reserve_seat", "compensate", False, "null compensation"),
        ("reserve_seat", "execute", False, "refused: compensated earlier"),
    ]
    assert [e["seq"] for e in entries] == [1, 2, 3]


async def test_without_a_state_directory_a_restart_forgets(
    start: StartParticipant, session: aiohttp.ClientSession, authority: TokenAuthority
) -> None:
    first = Caller(session, authority, await start("flight"))
    await first.call("/flight/book", {"from": "AMS"})
    assert len(await journal(first)) == 1
    await first.participant.stop()
    again = Caller(session, authority, await start("flight"))
    assert await journal(again) == []


async def test_a_slow_success_answers_late_with_its_effect_before_or_after_the_wait(
    start: StartParticipant, session: aiohttp.ClientSession, authority: TokenAuthority
) -> None:
    flight = Caller(session, authority, await start("flight"))
    for step, after in (("slow_before", False), ("slow_after", True)):
        began = time.monotonic()
        simulate = {"result": "SUCCESS", "seconds": 0.3, "after_effect": after}
        reply = await flight.call("/flight/book", {"simulate": simulate}, step=step)
        assert reply.status == 200 and reply.body["status"] == "booked"
        assert time.monotonic() - began >= 0.3
    assert [c["effect"] for c in await flight.calls()] == [True, True]


def test_a_ledger_on_a_file_is_reopened_as_it_was_left(tmp_path: Path) -> None:
    path = str(tmp_path / "flight.sqlite3")
    ledger = Ledger.open(path)
    assert ledger.book.entries() == [] and ledger.snapshot()["resources"] == {}
    ledger.reset()  # on a file: empties its tables
    assert Ledger.open(path).book.executed() == []
