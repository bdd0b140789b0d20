"""The web console (``saga_orchestrator.console.web``, ``pages`` and ``bars``): the timeline drawn from a
saga result (actions, retries, waits for a decision), escaping of everything a saga carries, the verbs
each state offers, and the HTTP side: a verb is sent only after its confirmation page, with the console's
token and a reason; errors are shown in the library's own words. The backend is sagas held in memory,
described by ``saga_orchestrator.sagas.describe`` from what the Executions API would answer (the real API
is exercised by tests/e2e/test_e2e_web_console.py)."""

from __future__ import annotations

import datetime
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from saga_orchestrator.console.bars import timeline_bars
from saga_orchestrator.console.pages import applicable_verbs, list_page, saga_page
from saga_orchestrator.console.web import Console, build_app, parse_filters
from saga_orchestrator.errors import InvalidRequestError, SagaNotFoundError, VerbNotApplicableError
from saga_orchestrator.ports import SagaStatus
from saga_orchestrator.sagas import InFlight, SagaView, describe, undo_plan

EXECUTION = "projects/p/locations/l/workflows/w/executions/e-1"
HOSTILE = '<script>alert("x")</script>&'


def action(status: str, start: str, end: str, attempts: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "status": status,
        "attempts": attempts,
        "started_at": f"2026-01-31T09:30:{start}Z",
        "finished_at": f"2026-01-31T09:30:{end}Z",
        **extra,
    }


# A saga whose third step was declined; the hotel's undo failed twice, then an operator skipped it.
RESULT: dict[str, Any] = {
    "saga_id": "trip-1",
    "status": "compensated",
    "execution": EXECUTION,
    "started_at": "2026-01-31T09:30:00.000Z",
    "finished_at": "2026-01-31T09:30:20.000Z",
    "failed_step": "charge_payment",
    "reason": "card declined",
    "steps": [
        {"name": "book_flight", "status": "compensated", "execute": action("succeeded", "00.000", "01.000"),
         "compensate": action("succeeded", "19.000", "20.000")},
        {"name": "reserve_hotel", "status": "compensated", "execute": action("succeeded", "01.000", "02.000", 3),
         "compensate": action("skipped", "05.000", "08.000", 2,
                              error={"kind": "exhausted", "status_code": 500, "message": "down"})},
        {"name": "charge_payment", "status": "failed",
         "execute": action("failed", "02.000", "04.000",
                           error={"kind": "business", "status_code": 409, "message": "card declined"}),
         "compensate": None},
        {"name": "send_receipt", "status": "not_run", "execute": None, "compensate": None},
    ],
    "audit": [
        {"verb": "skip", "step": "reserve_hotel", "reason": "released by phone", "by": "ops@example.com",
         "at": "2026-01-31T09:30:18.000Z"},
    ],
}  # fmt: skip
ARGUMENT = {
    "steps": [
        {"name": "book_flight", "compensate": {"url": "http://flight/cancel", "payload": {"id": HOSTILE}}},
        {"name": "reserve_hotel", "compensate": {"url": "http://hotel/release", "payload": {}}},
    ]
}


def ended(result: dict[str, Any] = RESULT, saga_id: str = "trip-1") -> SagaView:
    status = SagaStatus(EXECUTION, "SUCCEEDED", result, saga_id=saga_id, start_time="2026-01-31T09:30:00Z")
    return describe(status, None)


def waiting(routine_step: str, saga_id: str = "trip-2", flight: InFlight | None = None) -> SagaView:
    """A saga waiting for a decision: ``park_wait`` (parked) or ``stuck_wait`` (stuck)."""
    entries: list[dict[str, Any]] = [
        {"routine": "main", "step": "execute_task", "stepEntryMetadata": {
            "progressType": "PROGRESS_TYPE_FOR", "progressNumber": "2"}},
        {"routine": "main", "step": routine_step},
    ]  # fmt: skip
    status = SagaStatus(
        EXECUTION.replace("e-1", saga_id),
        "ACTIVE",
        saga_id=saga_id,
        start_time="2026-01-31T09:30:00Z",
        current_step=("await_decision", "wait_an_hour"),
        current_steps=(("main", routine_step), ("await_decision", "wait_an_hour")),
    )
    return describe(status, ARGUMENT, entries, flight)


def test_an_ended_saga_draws_each_action_then_the_wait_for_the_decision_in_the_order_they_ran() -> None:
    bars, span = timeline_bars(RESULT)
    assert span == 20.0
    assert [(b.kind, b.step, b.status, b.start, b.end) for b in bars] == [
        ("execute", "book_flight", "succeeded", 0.0, 1.0),
        ("execute", "reserve_hotel", "succeeded", 1.0, 2.0),
        ("execute", "charge_payment", "failed", 2.0, 4.0),
        ("compensate", "reserve_hotel", "skipped", 5.0, 8.0),
        # the saga waited from the end of the failed undo to the operator's skip
        ("wait", "reserve_hotel", "skip", 8.0, 18.0),
        ("compensate", "book_flight", "succeeded", 19.0, 20.0),
        ("not_run", "send_receipt", "not_run", None, None),
    ]
    assert bars[1].attempts == 3 and bars[2].detail == "business 409 card declined"
    assert bars[4].detail == "waited for a decision: skip by ops@example.com: released by phone"


def test_the_saga_page_places_each_bar_on_the_time_axis_and_marks_retried_actions() -> None:
    text = saga_page(ended(), [], where="projects/p")
    rows = re.findall(r'<li class="row ([^"]*)" data-step="([^"]*)" data-kind="([^"]*)"', text)
    assert [(step, kind) for _, step, kind in rows][:3] == [
        ("book_flight", "execute"),
        ("reserve_hotel", "execute"),
        ("charge_payment", "execute"),
    ]
    assert "retried" in rows[1][0] and "retried" not in rows[0][0]
    # charge_payment ran from 2 s to 4 s of 20 s
    assert re.search(r'data-step="charge_payment".*?<rect class="bar" x="10.00%" y="2" width="10.00%"', text)
    assert 'class="row kind-wait status-skip"' in text
    assert "<form" not in text.split("<main>")[1].split("Audit")[0]  # an ended saga offers no verb
    assert 'data-poll=""' in text  # and is not polled


def test_everything_a_saga_carries_is_escaped() -> None:
    result = {**RESULT, "saga_id": HOSTILE, "reason": HOSTILE}
    result["audit"] = [{**RESULT["audit"][0], "reason": HOSTILE, "by": HOSTILE}]
    pages = [
        saga_page(ended(result, saga_id=HOSTILE), [], where=HOSTILE, notice=HOSTILE, error=HOSTILE),
        saga_page(
            waiting("stuck_wait", saga_id=HOSTILE), [{"step": HOSTILE, "payload": {"id": HOSTILE}}], where=""
        ),
        list_page([ended(result, saga_id=HOSTILE)], where=HOSTILE, state="", since=HOSTILE, limit=5),
    ]
    for text in pages:
        assert "<script>" not in text and "&lt;script&gt;" in text


def test_the_list_highlights_the_sagas_that_wait_for_a_decision() -> None:
    views = [ended(), waiting("stuck_wait"), waiting("park_wait", saga_id="trip-3")]
    text = list_page(views, where="w", state="", since="1h", limit=50)
    assert re.findall(r'<tr class="saga ([^"]*)" data-saga="([^"]*)"', text) == [
        ("state-compensated", "trip-1"),
        ("state-stuck attention", "trip-2"),
        ("state-parked attention", "trip-3"),
    ]
    assert "2 sagas wait for an operator's decision" in text
    assert 'data-poll="/api/sagas?state=&amp;since=1h&amp;limit=50"' in text


def test_each_state_offers_its_verbs_and_a_parked_saga_names_the_step_it_waits_on() -> None:
    parked = waiting("park_wait", flight=InFlight(1, "execute", 0, dispatches=2, responses=2))
    assert (parked.state, applicable_verbs(parked)) == (
        "parked",
        ("retry", "compensate", "cancel", "terminate"),
    )
    assert applicable_verbs(waiting("stuck_wait")) == ("retry", "skip", "terminate")
    assert applicable_verbs(ended()) == ()
    text = saga_page(parked, [], where="w")
    assert (
        '<option value="reserve_hotel" selected>' in text
        and "This saga is parked (at step reserve_hotel)" in text
    )
    assert text.count('<textarea name="reason" rows="2" required') == 4
    # stuck with no task left to tell which undo failed: the person picks the step
    plan = [{"step": "book_flight", "method": "POST", "url": "http://flight/cancel"}]
    stuck = saga_page(waiting("stuck_wait"), plan, where="w")
    assert '<option value="" selected>which step waits?</option>' in stuck
    # a saga undoing already may have run some of the plan's undos
    assert "the saga is undoing; the undos of later steps may have run already" in stuck
    assert "If it failed now, it would undo, in this order" in saga_page(parked, plan, where="w")


def test_the_filters_report_every_bad_one_at_once() -> None:
    with pytest.raises(InvalidRequestError) as raised:
        parse_filters({"state": "sleeping", "since": "yesterday", "limit": "0"})
    assert [e.field for e in raised.value.errors] == ["state", "limit", "since"]
    filters = parse_filters({"state": "stuck", "since": "2h"})
    assert (filters.state, filters.limit) == ("stuck", 50)
    assert filters.moment is not None and filters.moment < datetime.datetime.now(datetime.UTC)


# --- the HTTP side ----------------------------------------------------------------------------------------


class MemorySagas:
    """Sagas held in memory as ``SagaOrchestrator`` describes them. Verbs are recorded, or refused with
    ``refusal`` (the library's own error)."""

    workflow_path = "projects/p/locations/l/workflows/w"

    def __init__(self, *views: SagaView) -> None:
        self.views = {view.saga_id: view for view in views}
        self.sent: list[tuple[str, str, str | None, str]] = []
        self.refusal: Exception | None = None

    def read_saga(self, saga: str) -> tuple[SagaView, list[dict[str, Any]]]:
        view = self.get_saga_status(saga)
        return view, undo_plan(ARGUMENT, view) if view.running else []

    def get_saga_status(self, saga: str) -> SagaView:
        if saga not in self.views:
            raise SagaNotFoundError(saga)
        return self.views[saga]

    def list_sagas(
        self, *, status: str | None = None, since: datetime.datetime | None = None, limit: int = 50
    ) -> list[SagaView]:
        return [v for v in self.views.values() if status in (None, v.state)][:limit]

    def _send(self, saga: str, verb: str, step: str | None, reason: str) -> str:
        view = self.get_saga_status(saga)
        if self.refusal is not None:
            raise self.refusal
        self.sent.append((saga, verb, step, reason))
        return view.execution_name

    def retry_step(self, saga: str, step: str, *, reason: str) -> str:
        return self._send(saga, "retry", step, reason)

    def skip_step(self, saga: str, step: str, *, reason: str) -> str:
        return self._send(saga, "skip", step, reason)

    def compensate_saga(self, saga: str, *, reason: str) -> str:
        return self._send(saga, "compensate", None, reason)

    def cancel_saga(self, saga: str, *, reason: str) -> str:
        return self._send(saga, "cancel", None, reason)

    def terminate_saga(self, saga: str, *, reason: str) -> str:
        self._send(saga, "terminate", None, reason)
        return "CANCELLED"


@pytest.fixture
def sagas() -> MemorySagas:
    return MemorySagas(ended(), waiting("stuck_wait"))


@pytest.fixture
async def client(sagas: MemorySagas) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(build_app(Console(sagas, token="t0ken")))) as running:
        yield running


async def test_a_verb_is_sent_only_after_its_confirmation_page_with_the_token(
    client: TestClient[Any, Any], sagas: MemorySagas
) -> None:
    form = {"saga": "trip-2", "verb": "skip", "step": "reserve_hotel", "reason": "released by phone"}
    confirming = await client.post("/saga/confirm", data=form)
    text = await confirming.text()
    assert confirming.status == 200 and "Skip step reserve_hotel of saga trip-2?" in text
    assert '<input type="hidden" name="token" value="t0ken">' in text and sagas.sent == []

    unconfirmed = await client.post("/saga/act", data={**form, "token": "t0ken"})
    assert "Skip step reserve_hotel" in await unconfirmed.text() and sagas.sent == []
    forged = await client.post("/saga/act", data={**form, "token": "guess", "confirmed": "yes"})
    assert forged.status == 403 and sagas.sent == []

    sent = await client.post(
        "/saga/act", data={**form, "token": "t0ken", "confirmed": "yes"}, allow_redirects=False
    )
    assert (sent.status, sent.headers["Location"]) == (303, "/saga?id=trip-2&sent=skip")
    assert sagas.sent == [("trip-2", "skip", "reserve_hotel", "released by phone")]


async def test_a_verb_without_a_reason_is_refused_before_anything_is_sent(
    client: TestClient[Any, Any], sagas: MemorySagas
) -> None:
    answer = await client.post(
        "/saga/act",
        data={"saga": "trip-2", "verb": "cancel", "reason": "  ", "token": "t0ken", "confirmed": "yes"},
    )
    assert answer.status == 400
    assert "cancel: a reason is required" in await answer.text() and sagas.sent == []


async def test_a_refused_verb_shows_the_librarys_message_on_the_saga_page(
    client: TestClient[Any, Any], sagas: MemorySagas
) -> None:
    sagas.refusal = VerbNotApplicableError("trip-2", "retry", "it is not waiting for a decision")
    answer = await client.post(
        "/saga/act",
        data={"saga": "trip-2", "verb": "retry", "step": "reserve_hotel", "reason": "back up", "token": "t0ken",
              "confirmed": "yes"},
    )  # fmt: skip
    text = await answer.text()
    assert answer.status == 409
    assert "retry does not apply to saga &#x27;trip-2&#x27;: it is not waiting for a decision" in text
    assert '<span class="saga-id">trip-2</span>' in text  # shown on the saga's own page

    missing = await client.get("/saga", params={"id": "no-such-saga"})
    assert (
        missing.status == 404 and "no execution of the saga workflow has this saga id" in await missing.text()
    )


async def test_the_list_endpoint_gives_the_rows_and_says_what_is_wrong_with_a_filter(
    client: TestClient[Any, Any],
) -> None:
    answer = await client.get("/api/sagas", params={"state": "stuck"})
    data = await answer.json()
    assert [s["saga_id"] for s in data["sagas"]] == ["trip-2"]
    assert 'data-saga="trip-2"' in data["rows"] and "1 saga waits" in data["attention"]
    refused = await client.get("/api/sagas", params={"since": "last week"})
    assert refused.status == 400 and "since: must be like 30s, 15m, 1h, 2d" in (await refused.json())["error"]
    page = await client.get("/")
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]


async def test_a_running_sagas_endpoint_gives_its_view_its_undo_plan_and_a_version(
    client: TestClient[Any, Any],
) -> None:
    data = await (await client.get("/api/saga", params={"id": "trip-2"})).json()
    assert data["saga"]["state"] == "stuck" and data["running"] is True
    assert [p["step"] for p in data["undo_plan"]] == ["book_flight"]
    assert len(data["version"]) == 20


async def test_a_console_on_a_loopback_address_refuses_other_host_names(sagas: MemorySagas) -> None:
    console = Console(sagas, hosts=frozenset({"127.0.0.1:1"}))
    async with TestClient(TestServer(build_app(console))) as running:
        answer = await running.get("/")
        assert answer.status == 421 and "answers at 127.0.0.1:1 only" in await answer.text()
