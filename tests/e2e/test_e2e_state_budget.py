"""The saga's state budget (issue 15) end to end: a step whose output is over its share of
``SAGA_STATE_BUDGET_BYTES`` fails, and the saga compensates it and the steps before it; an output within
its share reaches the result unchanged (the workflow keeps it once; saga_completion puts it back).

The demo participants return a large output when an execute payload asks for one (``output_padding``,
see ``examples/participants/services.py``). The stack runs with the default budget, 196608 bytes; a trip
keeps six outputs (three executes, three compensations), so each may take 32768 bytes.
"""

from __future__ import annotations

import pytest
from saga_orchestrator.settings import Settings

from devstack.stack import LocalStack
from tests.e2e.results import ResultListener
from tests.e2e.test_e2e_sagas import TRIP, executed_then_compensated, new_saga_id, outcome_of, trip

pytestmark = pytest.mark.e2e


def padded_trip(stack: LocalStack, saga_id: str, step: str, padding: int) -> dict[str, object]:
    request = trip(stack, saga_id)
    for item in request["steps"]:
        if item["name"] == step:
            item["execute"]["payload"]["output_padding"] = padding
    return request


def share(stack: LocalStack) -> int:
    return Settings.from_env(stack.function_environment()).state_budget_bytes // (2 * len(TRIP))


def test_an_output_over_its_budget_compensates_the_saga_and_names_the_budget(
    stack: LocalStack, results: ResultListener
) -> None:
    saga_id = new_saga_id("over-budget")
    stack.publish_request(padded_trip(stack, saga_id, "reserve_hotel", share(stack) + 1000))
    outcome = outcome_of(stack, results, saga_id)
    result = outcome.result

    assert (result["status"], result["cause"], result["failed_step"]) == (
        "compensated",
        "step_failed",
        "reserve_hotel",
    ), result["reason"]
    assert "SAGA_STATE_BUDGET_BYTES" in result["reason"]
    assert f"over its share of the saga state budget: {share(stack)} of" in result["reason"]
    assert result["uncompensated_steps"] == []
    hotel = outcome.step("reserve_hotel")
    assert hotel["execute"]["status"] == "failed"
    assert hotel["execute"]["error"]["kind"] == "output_too_large"
    assert hotel["execute"]["output"] is None
    # The hotel was reserved (its output was only too large to keep): it is released, then the flight.
    assert hotel["status"] == "compensated"
    assert outcome.step("book_flight")["status"] == "compensated"
    assert outcome.step("charge_payment")["status"] == "not_run"
    assert outcome.effects() == executed_then_compensated(["book_flight", "reserve_hotel"], 2)
    # Reported once, never retried: another try would return the same output.
    assert [s for s in outcome.seen() if s[1] == "reserve_hotel" and s[2] == "execute"] == [
        ("hotel", "reserve_hotel", "execute", 200)
    ]


def test_an_output_within_its_budget_reaches_the_result_whole(
    stack: LocalStack, results: ResultListener
) -> None:
    saga_id = new_saga_id("in-budget")
    padding = share(stack) // 2
    stack.publish_request(padded_trip(stack, saga_id, "book_flight", padding))
    outcome = outcome_of(stack, results, saga_id)

    assert outcome.result["status"] == "succeeded", outcome.result["reason"]
    flight = outcome.step("book_flight")["execute"]["output"]
    assert flight["padding"] == "x" * padding
    assert flight["status"] == "booked"
    assert outcome.effects() == [(service, name, "execute") for name, service in TRIP]
