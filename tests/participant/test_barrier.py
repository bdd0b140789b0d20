"""The barrier's rules on every bundled store, the store doing the locking: SQLite (a file, and memory)
and a real PostgreSQL server."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from saga_participant import Answer, Barrier, BarrierStore, SagaCall, SQLiteStore, business_failure, success
from saga_participant.protocol import Action, retry_later
from saga_participant.stores.postgres import PostgresStore


@pytest.fixture(params=["sqlite-file", "sqlite-memory", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BarrierStore]:
    if request.param == "sqlite-file":
        yield SQLiteStore(str(tmp_path / "barrier.db"))
    elif request.param == "sqlite-memory":
        yield SQLiteStore(":memory:")
    else:
        yield request.getfixturevalue("postgres_store")


def call(action: Action, saga: str = "trip-1", step: str = "book_flight", key: str | None = None) -> SagaCall:
    return SagaCall(
        saga_id=saga,
        step=step,
        action=action,
        idempotency_key=key or f"{saga}:{step}:{action}",
        payload={"from": "AMS"},
    )


class Bookings:
    """The business: a list of effects it applied (thread-safe), each answering with a new booking id."""

    def __init__(self, *, delay: float = 0.0) -> None:
        self.applied: list[tuple[str, Action]] = []
        self._guard = threading.Lock()
        self._delay = delay

    def handler(self, current: SagaCall) -> Answer:
        time.sleep(self._delay)
        with self._guard:
            self.applied.append((current.saga_id, current.action))
            number = len(self.applied)
        if current.action == "compensate":
            return success({"status": "cancelled"})
        return success({"booking_id": f"FL-{number}"})


def effects(barrier: Barrier, saga: str = "trip-1") -> list[tuple[str, str]]:
    return [(e.step, e.action) for e in barrier.effects(saga)]


def test_a_repeated_key_gets_the_first_answer_and_applies_nothing(store: BarrierStore) -> None:
    barrier, bookings = Barrier(store), Bookings()
    first = barrier.run(call("execute"), bookings.handler)
    again = barrier.run(call("execute"), bookings.handler)
    assert (first.status, first.body) == (200, {"booking_id": "FL-1"})
    assert (again.status, again.body) == (first.status, first.body)
    assert bookings.applied == [("trip-1", "execute")]
    assert effects(barrier) == [("book_flight", "execute")]


def test_a_compensation_before_its_execute_is_a_no_op_and_blocks_the_execute(store: BarrierStore) -> None:
    barrier, bookings = Barrier(store), Bookings()
    undone = barrier.run(call("compensate"), bookings.handler)
    late = barrier.run(call("execute"), bookings.handler)
    assert undone.status == 200 and undone.body["status"] == "nothing_to_undo"
    assert late.status == 409 and late.body["error"] == "ALREADY_COMPENSATED"
    assert bookings.applied == [] and effects(barrier) == []
    assert barrier.run(call("compensate"), bookings.handler).body == undone.body


def test_an_orphan_compensation_can_be_left_to_the_handler_and_still_blocks_the_execute(
    store: BarrierStore,
) -> None:
    barrier, bookings = Barrier(store, run_orphan_compensations=True), Bookings()
    undone = barrier.run(call("compensate", step="reserve_hotel"), bookings.handler)
    assert undone.body == {"status": "cancelled"} and bookings.applied == [("trip-1", "compensate")]
    assert barrier.run(call("execute", step="reserve_hotel"), bookings.handler).status == 409
    assert effects(barrier) == [("reserve_hotel", "compensate")]


def test_a_compensation_after_a_success_runs_once(store: BarrierStore) -> None:
    barrier, bookings = Barrier(store), Bookings()
    barrier.run(call("execute"), bookings.handler)
    first = barrier.run(call("compensate"), bookings.handler)
    again = barrier.run(call("compensate"), bookings.handler)
    assert first.body == again.body == {"status": "cancelled"}
    assert bookings.applied == [("trip-1", "execute"), ("trip-1", "compensate")]
    assert effects(barrier) == [("book_flight", "execute"), ("book_flight", "compensate")]
    # The same step executed again under the same key, after its undo, still answers as it did.
    assert barrier.run(call("execute"), bookings.handler).body == {"booking_id": "FL-1"}


def test_a_refusal_is_kept_for_its_key_and_an_operators_new_round_decides_again(store: BarrierStore) -> None:
    barrier = Barrier(store)
    decisions = iter([business_failure("CARD_DECLINED", "card declined"), success({"charge_id": "CH-1"})])

    def charge(current: SagaCall) -> Answer:
        return next(decisions)

    refused = barrier.run(call("execute"), charge)
    assert refused.status == 409
    assert barrier.run(call("execute"), charge).body == refused.body  # replayed, not decided again
    retried = barrier.run(call("execute", key="trip-1:book_flight:execute:1"), charge)
    assert (retried.status, retried.body) == (200, {"charge_id": "CH-1"})
    assert effects(barrier) == [("book_flight", "execute")]


def test_a_compensation_of_a_refused_execute_is_a_no_op(store: BarrierStore) -> None:
    barrier, bookings = Barrier(store), Bookings()
    barrier.run(call("execute"), lambda c: business_failure("SOLD_OUT", "no seats"))
    undone = barrier.run(call("compensate"), bookings.handler)
    assert undone.body["status"] == "nothing_to_undo" and bookings.applied == []
    later = barrier.run(call("execute", key="trip-1:book_flight:execute:1"), bookings.handler)
    assert later.status == 409 and bookings.applied == []


def test_transient_answers_and_failures_are_not_kept(store: BarrierStore) -> None:
    barrier, bookings = Barrier(store), Bookings()
    assert barrier.run(call("execute"), lambda c: retry_later(seconds=3)).headers["Retry-After"] == "3"

    def broken(current: SagaCall) -> Answer:
        raise RuntimeError("the database is down")

    with pytest.raises(RuntimeError):
        barrier.run(call("execute"), broken)
    assert barrier.run(call("execute"), bookings.handler).status == 200
    assert bookings.applied == [("trip-1", "execute")]


def test_a_delivery_at_work_holds_off_duplicates_until_its_lease_ends(store: BarrierStore) -> None:
    now = [1000.0]
    barrier, bookings = Barrier(store, lease_seconds=60, clock=lambda: now[0]), Bookings()
    assert barrier.begin(call("execute")) is None  # claimed; this delivery's process then dies
    duplicate = barrier.run(call("execute"), bookings.handler)
    assert duplicate.status == 425 and duplicate.headers["Retry-After"] == "30"
    assert barrier.run(call("compensate"), bookings.handler).status == 425  # undo waits for the answer
    now[0] += 61
    assert barrier.run(call("execute"), bookings.handler).status == 200
    assert bookings.applied == [("trip-1", "execute")]


def test_steps_sagas_and_scopes_are_separate(store: BarrierStore) -> None:
    flights, hotels, bookings = Barrier(store, scope="flights"), Barrier(store, scope="hotels"), Bookings()
    flights.run(call("compensate"), bookings.handler)
    assert hotels.run(call("execute"), bookings.handler).status == 200
    assert flights.run(call("execute", step="return_flight"), bookings.handler).status == 200
    assert flights.run(call("execute", saga="trip-2"), bookings.handler).status == 200
    assert len(bookings.applied) == 3


def deliver_at_once(count: int, deliver: Any) -> list[Answer]:
    start = threading.Barrier(count)

    def one(_: int) -> Answer:
        start.wait()
        result: Answer = deliver()
        return result

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def test_fifty_concurrent_duplicates_apply_one_effect(store: BarrierStore) -> None:
    barrier, bookings = Barrier(store), Bookings(delay=0.05)
    answers = deliver_at_once(50, lambda: barrier.run(call("execute"), bookings.handler))
    assert bookings.applied == [("trip-1", "execute")]
    assert {a.status for a in answers} <= {200, 425} and [a.status for a in answers].count(200) >= 1
    assert {str(a.body) for a in answers if a.status == 200} == {"{'booking_id': 'FL-1'}"}
    assert barrier.run(call("execute"), bookings.handler).body == {"booking_id": "FL-1"}
    assert effects(barrier) == [("book_flight", "execute")]


def test_fifty_concurrent_duplicates_commit_one_row_with_the_barrier_on_postgres(
    postgres_store: PostgresStore, postgres_dsn: str
) -> None:
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        db.execute("CREATE TABLE IF NOT EXISTS booking (id serial PRIMARY KEY, saga_id text NOT NULL)")
        db.execute("TRUNCATE booking")
    barrier = Barrier(postgres_store)

    def book(current: SagaCall) -> Answer:
        row = current.connection.execute(
            "INSERT INTO booking (saga_id) VALUES (%s) RETURNING id", (current.saga_id,)
        ).fetchone()
        time.sleep(0.02)
        return success({"booking_id": row[0]})

    answers = deliver_at_once(50, lambda: barrier.run(call("execute"), book, transactional=True))
    with psycopg.connect(postgres_dsn) as db:
        rows = db.execute("SELECT id FROM booking").fetchall()
    assert len(rows) == 1
    assert {(a.status, a.body["booking_id"]) for a in answers} == {(200, rows[0][0])}  # all waited, replayed
    assert effects(barrier) == [("book_flight", "execute")]


def test_the_business_write_rolls_back_with_the_barrier_record_on_the_callers_connection(
    postgres_store: PostgresStore, postgres_dsn: str
) -> None:
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        db.execute("CREATE TABLE IF NOT EXISTS booking (id serial PRIMARY KEY, saga_id text NOT NULL)")
        db.execute("TRUNCATE booking")
    barrier = Barrier(postgres_store)

    def book_then_fail(current: SagaCall) -> Answer:
        current.connection.execute("INSERT INTO booking (saga_id) VALUES (%s)", (current.saga_id,))
        raise RuntimeError("the process dies after writing")

    with psycopg.connect(postgres_dsn, autocommit=True) as mine:
        with pytest.raises(RuntimeError):
            barrier.run(call("execute"), book_then_fail, connection=mine)
        assert mine.execute("SELECT count(*) FROM booking").fetchone() == (0,)
        assert mine.execute("SELECT count(*) FROM saga_barrier").fetchone() == (0,)
        answer = barrier.run(call("execute"), lambda c: success({"ok": True}), connection=mine)
        assert answer.status == 200
        assert mine.execute("SELECT state FROM saga_barrier").fetchall() == [("done",)]


def test_fifty_concurrent_duplicates_commit_one_row_with_the_barrier_on_sqlite(tmp_path: Path) -> None:
    path = str(tmp_path / "shop.db")
    store = SQLiteStore(path)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE booking (id INTEGER PRIMARY KEY, saga_id TEXT NOT NULL)")
    barrier = Barrier(store)

    def book(current: SagaCall) -> Answer:
        cursor = current.connection.execute("INSERT INTO booking (saga_id) VALUES (?)", (current.saga_id,))
        return success({"booking_id": cursor.lastrowid})

    def deliver() -> Answer:
        mine = sqlite3.connect(path, timeout=30)
        try:
            return barrier.run(call("execute"), book, connection=mine)
        finally:
            mine.close()

    answers = deliver_at_once(50, deliver)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT id FROM booking").fetchall() == [(1,)]
    assert {(a.status, a.body["booking_id"]) for a in answers} == {(200, 1)}
