"""Every attempt's answer, end to end on the real local stack: step_executor logs one line per attempt, the
stack ships the functions' output to the Cloud Logging emulator as Cloud Run does, and the attempt reader
lists them back through the Logging REST API, rendered under the saga's timeline."""

from __future__ import annotations

import json

import pytest
from saga_orchestrator.attempts import Attempts, attempts_section, operator_attempt_log
from saga_orchestrator.console.cli import show_text
from saga_orchestrator.httpclient import HttpClient
from saga_orchestrator.workflows.saga_orchestrator import SagaOrchestrator

from devstack.stack import LocalStack
from tests.e2e.results import ResultListener
from tests.e2e.test_e2e_console import ended_view
from tests.e2e.test_e2e_operator_decisions import result_of
from tests.e2e.test_e2e_sagas import WAIT_TIMEOUT, new_saga_id, trip
from tests.support.eventually import eventually

pytestmark = pytest.mark.e2e

HOTEL_ERROR = 'HTTP 500: {"error": "ERROR", "message": "injected server error"}'


def answer(message: str) -> str:
    """A logged answer with its JSON body in one spelling (participants on other frameworks space JSON
    differently)."""
    head, found, body = message.partition(": ")
    try:
        return f"{head}: {json.dumps(json.loads(body))}" if found else message
    except ValueError:
        return message


def test_a_step_that_failed_twice_then_succeeded_shows_its_three_answers_in_order(
    stack: LocalStack, results: ResultListener, orchestrator: SagaOrchestrator
) -> None:
    saga_id = new_saga_id("attempts")
    retried = {"simulate": {"result": "ERROR", "times": 2}, "execute": {"retry": {"max_attempts": 5}}}
    stack.publish_request(trip(stack, saga_id, {"reserve_hotel": retried}))
    result = result_of(results, saga_id)
    assert result["status"] == "succeeded"
    hotel_result = next(s for s in result["steps"] if s["name"] == "reserve_hotel")["execute"]
    assert hotel_result["attempts"] == 3  # the result keeps only the count

    env = stack.function_environment()
    reader = operator_attempt_log(env, stack.settings.project_id, HttpClient())

    def all_three() -> Attempts | None:
        found = reader.attempts(saga_id)
        return found if len(found.get(("reserve_hotel", "execute"), [])) >= 3 else None

    found = eventually(
        all_three, what="three hotel attempts in Cloud Logging", timeout=WAIT_TIMEOUT, every=0.2
    )
    hotel = found[("reserve_hotel", "execute")]
    assert [(a.attempt, a.max_attempts, a.outcome, a.status_code, answer(a.message)) for a in hotel] == [
        (1, 5, "transient", 500, HOTEL_ERROR),
        (2, 5, "transient", 500, HOTEL_ERROR),
        (3, 5, "success", 200, ""),
    ]
    assert hotel[0].time < hotel[1].time < hotel[2].time
    assert list(found) == [
        ("book_flight", "execute"),
        ("reserve_hotel", "execute"),
        ("charge_payment", "execute"),
    ]
    assert [(a.attempt, a.status_code) for a in found[("book_flight", "execute")]] == [(1, 200)]

    # What ``saga show`` prints with the section under the timeline.
    view = ended_view(orchestrator, saga_id)
    section = attempts_section(env, stack.settings.project_id, view.saga_id, since=view.start_time)
    shown = show_text(view, []) + "\n" + section
    lines = shown.splitlines()
    first = lines.index(next(line for line in lines if line.startswith("  reserve_hotel")))
    head, second, third = (lines[first + i].split() for i in range(3))
    assert head[:3] == ["reserve_hotel", "execute", "1/5"] and head[4:6] == ["transient", "500"]
    assert second[0] == "2/5" and second[2:4] == ["transient", "500"]
    assert answer(lines[first].split("  ")[-1]) == HOTEL_ERROR == answer(lines[first + 1].split("  ")[-1])
    assert third[0] == "3/5" and third[2:] == ["success", "200"]
    assert lines[1].startswith("timeline of") and "attempts (from the step executor's log):" in lines
