"""``max_attempts`` counts the calls that reached the participant, not the dispatches Cloud Tasks made, on
the real local stack: the local Cloud Tasks emulator is made to refuse the step's dispatches as a busy
platform would (``refuse_dispatch``: a 429 or 503 of the platform's own, counted in
X-CloudTasks-TaskRetryCount but not in X-CloudTasks-TaskExecutionCount), and a participant that always
answers 503 is still called exactly ``max_attempts`` times."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import json_format, struct_pb2

from devstack.stack import LocalStack
from localcloud.tasks.faults import fault_client
from tests.e2e.results import ResultListener
from tests.e2e.test_e2e_sagas import (
    POLL_EVERY,
    WAIT_TIMEOUT,
    executed_then_compensated,
    executions_labelled,
    log_entries,
    new_saga_id,
    outcome_of,
    trip,
)
from tests.support.eventually import eventually

pytestmark = pytest.mark.e2e

MAX_ATTEMPTS = 3
REFUSALS = 2  # before the first call: with the old counting the first call was already attempt 3
# The flight answers 425 three times first (backoff 0.5 + 1 + 2 s): time to arm the hotel's fault, which
# names the saga's execution, before the hotel's task exists.
FLIGHT_ONGOING = 3


def admin(stack: LocalStack, method: str, **fields: Any) -> dict[str, Any]:
    message = struct_pb2.Struct()
    message.update(fields)
    with grpc.insecure_channel(stack.config.tasks) as channel:
        answer = fault_client(channel, method)(message, timeout=10)
    return dict(json_format.MessageToDict(answer))


def execution_id(stack: LocalStack, saga_id: str) -> str:
    found = eventually(
        lambda: executions_labelled(stack, saga_id),
        what=f"the execution of saga {saga_id}",
        timeout=WAIT_TIMEOUT,
        every=POLL_EVERY,
    )
    return str(found[0].name).rsplit("/", 1)[-1]


@pytest.mark.parametrize("refused_with", [None, 503, 429], ids=["no-refusal", "refused-503", "refused-429"])
def test_a_step_whose_participant_always_answers_503_is_called_exactly_max_attempts_times(
    stack: LocalStack, results: ResultListener, refused_with: int | None
) -> None:
    saga_id = new_saga_id("exact")
    options: dict[str, dict[str, Any]] = {
        "book_flight": {
            "simulate": {"result": "ONGOING", "times": FLIGHT_ONGOING},
            "execute": {"retry": {"max_attempts": FLIGHT_ONGOING + 2}},
        },
        "reserve_hotel": {
            "simulate": {"result": "ERROR", "status": 503, "times": 99},
            "execute": {"retry": {"max_attempts": MAX_ATTEMPTS}},
        },
    }
    stack.publish_request(trip(stack, saga_id, options))
    queue = (
        f"projects/{stack.settings.project_id}/locations/{stack.settings.location}"
        f"/queues/{stack.settings.require('SAGA_TASK_QUEUE')}"
    )
    # The workflow names the hotel's task <execution>-1-execute-<try>.
    prefix = f"{queue}/tasks/{execution_id(stack, saga_id)}-1-execute-"
    if refused_with is not None:
        admin(
            stack,
            "InjectFault",
            kind="refuse_dispatch",
            task_prefix=prefix,
            status=refused_with,
            times=REFUSALS,
        )
    try:
        outcome = outcome_of(stack, results, saga_id)
        left = admin(stack, "ListFaults")["faults"]
    finally:
        if refused_with is not None:
            admin(stack, "ClearFaults")

    assert left == []  # every refusal fell on the hotel's dispatches
    result = outcome.result
    assert (result["status"], result["failed_step"]) == ("compensated", "reserve_hotel")
    execute = outcome.step("reserve_hotel")["execute"]
    assert (execute["status"], execute["attempts"]) == ("failed", MAX_ATTEMPTS)
    assert (execute["error"]["kind"], execute["error"]["status_code"]) == ("exhausted", 503)
    assert outcome.step("book_flight")["execute"]["attempts"] == FLIGHT_ONGOING + 1
    hotel = [c for c in outcome.calls if c["service"] == "hotel"]
    assert [(c["action"], c["status"]) for c in hotel] == [("execute", 503)] * MAX_ATTEMPTS
    assert {c["idempotency_key"] for c in hotel} == {f"{saga_id}:reserve_hotel:execute"}
    hotel_log = [
        e
        for e in log_entries(stack, "step_executor", saga_id)
        if e["logging.googleapis.com/labels"].get("step") == "reserve_hotel"
    ]
    assert [e["attempt"] for e in hotel_log if "outcome" in e] == list(range(1, MAX_ATTEMPTS + 1))
    # A refusal below 500 may have been counted by Google's Cloud Tasks: the executor says so.
    warned = [e["previous_response"] for e in hotel_log if "previous_response" in e]
    assert warned == ([429] if refused_with == 429 else [])
    assert outcome.effects() == executed_then_compensated(["book_flight"], 1)
