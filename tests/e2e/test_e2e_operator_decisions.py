"""An operator steering a saga that waits for a decision, end to end on the real local stack: a stuck
compensation (``stuck`` notice; ``skip``, ``retry`` or no decision until the bound) and a parked step
(``parked`` notice; ``retry``, ``compensate`` or the bound), each decision sent with ``SagaOrchestrator``
through the saga's callback endpoint as the operator's own identity, and each one in the result's audit.
The e2e stack bounds a stuck wait at ``STUCK_SECONDS`` (deployment.env: a week).
"""

from __future__ import annotations

from typing import Any

import pytest
from saga_orchestrator.errors import SagaNotRunningError, VerbNotApplicableError
from saga_orchestrator.workflows.saga_orchestrator import SagaOrchestrator

from devstack.stack import LocalStack, ResultEvent
from tests.e2e.conftest import STUCK_SECONDS
from tests.e2e.results import ResultListener
from tests.e2e.test_e2e_operator import only_result, start_running
from tests.e2e.test_e2e_sagas import RESULT_TIMEOUT, calls_of, new_saga_id, seen, trip

pytestmark = pytest.mark.e2e

# Flight, hotel, payment, then a return flight that is refused: three done steps to undo.
FOUR_STEPS = (
    ("book_flight", "flight"),
    ("reserve_hotel", "hotel"),
    ("charge_payment", "payment"),
    ("book_return", "flight"),
)


def stuck_hotel(stack: LocalStack, saga_id: str, *, fixed_after: int | None = None) -> dict[str, Any]:
    """Four steps, the last refused; the hotel's undo fails twice (its whole budget): the saga is stuck
    on it. With ``fixed_after``, the hotel answers again from that attempt of the same key on."""
    failing: dict[str, Any] = {"result": "ERROR"}
    if fixed_after is not None:
        failing["times"] = fixed_after
    options: dict[str, dict[str, Any]] = {
        "reserve_hotel": {"compensate_simulate": failing, "compensate": {"retry": {"max_attempts": 2}}},
        "book_return": {"simulate": "FAILURE"},
    }
    return trip(stack, saga_id, options, steps=FOUR_STEPS)


def notice_of(results: ResultListener, saga_id: str, count: int = 1) -> dict[str, Any]:
    event = results.wait_notice(saga_id, RESULT_TIMEOUT, count)
    assert event is not None, f"no notice {count} for {saga_id} within {RESULT_TIMEOUT:g}s"
    assert isinstance(event.data, dict)
    return event.data


def result_of(results: ResultListener, saga_id: str, timeout: float = RESULT_TIMEOUT) -> dict[str, Any]:
    event: ResultEvent = only_result(results, saga_id, timeout)
    assert isinstance(event.data, dict)
    return event.data


def undos(stack: LocalStack, saga_id: str) -> list[tuple[str, str, str, int | None]]:
    return [call for call in seen(calls_of(stack, saga_id)) if call[2] == "compensate"]


def test_a_stuck_compensation_skipped_by_an_operator_still_undoes_the_first_step(
    stack: LocalStack, results: ResultListener, orchestrator: SagaOrchestrator
) -> None:
    saga_id = new_saga_id("skip")
    stack.publish_request(stuck_hotel(stack, saga_id))

    notice = notice_of(results, saga_id)
    assert (notice["notice"], notice["step"], notice["action"], notice["verbs"]) == (
        "stuck",
        "reserve_hotel",
        "compensate",
        ["retry", "skip"],
    )
    assert notice["error"]["kind"] == "exhausted" and notice["until"]
    [event] = results.notices(saga_id)
    assert event.type == "dev.sagaorchestrator.saga.v1.stuck"
    with pytest.raises(VerbNotApplicableError, match="has no step 'no_such_step'"):
        orchestrator.skip_step(saga_id, "no_such_step", reason="typo")

    orchestrator.skip_step(saga_id, "reserve_hotel", reason="released by phone")

    result = result_of(results, saga_id)
    assert (result["status"], result["cause"], result["uncompensated_steps"]) == (
        "compensated",
        "step_failed",
        [],
    )
    [audit] = result["audit"]
    assert (audit["verb"], audit["step"], audit["reason"]) == ("skip", "reserve_hotel", "released by phone")
    assert "@" in audit["by"] and audit["at"]
    hotel = next(s for s in result["steps"] if s["name"] == "reserve_hotel")
    assert (hotel["status"], hotel["compensate"]["status"]) == ("compensated", "skipped")
    assert undos(stack, saga_id) == [
        ("payment", "charge_payment", "compensate", 200),
        ("hotel", "reserve_hotel", "compensate", 500),
        ("hotel", "reserve_hotel", "compensate", 500),
        ("flight", "book_flight", "compensate", 200),
    ]


def test_a_stuck_compensation_with_no_decision_ends_failed_after_the_other_undos(
    stack: LocalStack, results: ResultListener
) -> None:
    saga_id = new_saga_id("nodecision")
    stack.publish_request(stuck_hotel(stack, saga_id))
    assert notice_of(results, saga_id)["step"] == "reserve_hotel"

    result = result_of(results, saga_id, STUCK_SECONDS + RESULT_TIMEOUT)
    assert (result["status"], result["failed_step"], result["uncompensated_steps"]) == (
        "failed",
        "reserve_hotel",
        ["reserve_hotel"],
    )
    assert undos(stack, saga_id)[-1] == ("flight", "book_flight", "compensate", 200)
    assert result["audit"] == []


def test_retry_on_a_stuck_compensation_after_the_participant_is_fixed_ends_compensated(
    stack: LocalStack, results: ResultListener, orchestrator: SagaOrchestrator
) -> None:
    saga_id = new_saga_id("retryundo")
    stack.publish_request(stuck_hotel(stack, saga_id, fixed_after=2))
    notice_of(results, saga_id)

    orchestrator.retry_step(saga_id, "reserve_hotel", reason="the hotel's service is back")

    result = result_of(results, saga_id)
    assert (result["status"], result["uncompensated_steps"]) == ("compensated", [])
    assert [(a["verb"], a["step"]) for a in result["audit"]] == [("retry", "reserve_hotel")]
    assert undos(stack, saga_id) == [
        ("payment", "charge_payment", "compensate", 200),
        ("hotel", "reserve_hotel", "compensate", 500),
        ("hotel", "reserve_hotel", "compensate", 500),
        ("hotel", "reserve_hotel", "compensate", 200),
        ("flight", "book_flight", "compensate", 200),
    ]


def parked_hotel(stack: LocalStack, saga_id: str, park_seconds: int = 60) -> dict[str, Any]:
    """The hotel step parks when it fails for good: its service is down for its two attempts."""
    request = trip(
        stack,
        saga_id,
        {
            "reserve_hotel": {
                "simulate": {"result": "ERROR", "times": 2},
                "execute": {"retry": {"max_attempts": 2}},
            }
        },
    )
    request["steps"][1].update(on_failure="park", park_seconds=park_seconds)
    return request


def test_a_parked_step_retried_by_an_operator_goes_on_and_the_saga_succeeds(
    stack: LocalStack, results: ResultListener, orchestrator: SagaOrchestrator
) -> None:
    saga_id = new_saga_id("parkretry")
    stack.publish_request(parked_hotel(stack, saga_id))
    notice = notice_of(results, saga_id)
    assert (notice["notice"], notice["step"], notice["verbs"]) == (
        "parked",
        "reserve_hotel",
        ["retry", "compensate", "cancel"],
    )
    with pytest.raises(VerbNotApplicableError):
        orchestrator.retry_step(saga_id, "no_such_step", reason="typo")

    orchestrator.retry_step(saga_id, "reserve_hotel", reason="the hotel's service is back")

    result = result_of(results, saga_id)
    assert (result["status"], result["cause"]) == ("succeeded", None)
    assert [(a["verb"], a["step"]) for a in result["audit"]] == [("retry", "reserve_hotel")]
    hotel = [call for call in seen(calls_of(stack, saga_id)) if call[0] == "hotel"]
    assert hotel == [("hotel", "reserve_hotel", "execute", status) for status in (500, 500, 200)]
    with pytest.raises(SagaNotRunningError):
        orchestrator.retry_step(saga_id, "reserve_hotel", reason="once more")


def test_a_parked_step_given_up_by_an_operator_is_compensated(
    stack: LocalStack, results: ResultListener, orchestrator: SagaOrchestrator
) -> None:
    saga_id = new_saga_id("parkgiveup")
    stack.publish_request(parked_hotel(stack, saga_id))
    notice_of(results, saga_id)

    orchestrator.compensate_saga(saga_id, reason="no rooms this week")

    result = result_of(results, saga_id)
    assert (result["status"], result["cause"], result["failed_step"]) == (
        "compensated",
        "step_failed",
        "reserve_hotel",
    )
    assert [(a["verb"], a["reason"]) for a in result["audit"]] == [("compensate", "no rooms this week")]
    # The hotel failed (as a step that is not parked would): only the flight is undone.
    assert undos(stack, saga_id) == [("flight", "book_flight", "compensate", 200)]


def test_a_parked_step_whose_bound_passes_is_compensated(stack: LocalStack, results: ResultListener) -> None:
    saga_id = new_saga_id("parkbound")
    stack.publish_request(parked_hotel(stack, saga_id, park_seconds=3))
    notice_of(results, saga_id)
    result = result_of(results, saga_id)
    assert (result["status"], result["cause"], result["audit"]) == ("compensated", "step_failed", [])


def test_a_decision_on_a_saga_that_waits_for_none_is_refused_and_changes_nothing(
    stack: LocalStack, results: ResultListener, orchestrator: SagaOrchestrator
) -> None:
    saga_id = new_saga_id("notwaiting")
    start_running(
        stack,
        orchestrator,
        trip(stack, saga_id, {"reserve_hotel": {"simulate": {"result": "HANG", "seconds": 3, "times": 1}}}),
    )
    for decide in (orchestrator.skip_step, orchestrator.retry_step):
        with pytest.raises(VerbNotApplicableError, match="not waiting for a decision"):
            decide(saga_id, "reserve_hotel", reason="by hand")
    with pytest.raises(VerbNotApplicableError, match="not waiting for a decision"):
        orchestrator.compensate_saga(saga_id, reason="give up")
    result = result_of(results, saga_id)
    assert (result["status"], result["audit"]) == ("succeeded", [])
    assert results.notices(saga_id) == []
