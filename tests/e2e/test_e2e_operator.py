"""The operator's side end to end on the real local stack: ``cancel_saga`` (the saga compensates),
``terminate_saga`` and a raw Executions API cancel (the sweeper publishes ``failed`` / ``terminated``), an
execution the engine FAILED (``failed`` / ``engine_error``), and what a stop of an ended or unknown saga
says. The stack's timer calls saga_sweeper every ``SAGA_SWEEP_SECONDS``; nothing here calls it directly.

The engine fault is injected honestly: the saga workflow is redeployed (a new revision, through the
Workflows API, as ``gcloud workflows deploy`` would) with a source that raises at its first step, a saga is
started through ``saga-requests`` while that revision is the latest, and the original source is deployed
again at once. The execution pins the broken revision and ends FAILED in the engine; the saga's own code
never ran, so only the sweeper can say so.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from google.cloud import workflows_v1
from google.protobuf import field_mask_pb2
from saga_orchestrator.errors import SagaNotFoundError, SagaNotRunningError
from saga_orchestrator.workflows.saga_orchestrator import SagaOrchestrator

from devstack.stack import LocalStack, ResultEvent
from tests.e2e.results import ResultListener
from tests.e2e.test_e2e_sagas import (
    POLL_EVERY,
    RESULT_TIMEOUT,
    WAIT_TIMEOUT,
    calls_of,
    new_saga_id,
    trip,
)
from tests.support.eventually import eventually

pytestmark = pytest.mark.e2e

BROKEN_SOURCE = """main:
  params: [args]
  steps:
    - boom:
        raise:
          message: "engine fault injected by the e2e test"
          tags: ["InjectedFault"]
"""


def only_result(results: ResultListener, saga_id: str, timeout: float = RESULT_TIMEOUT) -> ResultEvent:
    """The one result of ``saga_id`` (the sweeper repeats it with the same ce-id; the listener dedupes)."""
    event = results.wait(saga_id, timeout)
    assert event is not None, f"no result for {saga_id} within {timeout:g}s"
    assert [e.id for e in results.events(saga_id)] == [event.id]
    return event


def hanging_trip(stack: LocalStack, saga_id: str) -> dict[str, Any]:
    """book_flight succeeds, reserve_hotel hangs (one attempt): the saga is running for a while."""
    options: dict[str, dict[str, Any]] = {
        "reserve_hotel": {
            "simulate": {"result": "HANG", "seconds": 4, "times": 1},
            "execute": {"retry": {"max_attempts": 1}},
        }
    }
    return trip(stack, saga_id, options)


def start_running(stack: LocalStack, orchestrator: SagaOrchestrator, request: dict[str, Any]) -> str:
    saga_id = str(request["saga_id"])
    stack.publish_request(request)
    execution: str = eventually(
        lambda: orchestrator.find_execution(saga_id),
        what="the saga's execution",
        timeout=WAIT_TIMEOUT,
        every=POLL_EVERY,
    )
    eventually(
        lambda: calls_of(stack, saga_id, ["hotel"]) or None,
        what="reserve_hotel to be called",
        timeout=WAIT_TIMEOUT,
        every=POLL_EVERY,
    )
    return execution


def test_terminate_saga_ends_in_a_failed_result_with_cause_terminated_from_the_sweeper(
    stack: LocalStack, results: ResultListener, orchestrator: SagaOrchestrator
) -> None:
    saga_id = new_saga_id("terminate")
    execution = start_running(stack, orchestrator, hanging_trip(stack, saga_id))

    assert orchestrator.terminate_saga(saga_id, reason="e2e: stuck") == "CANCELLED"

    event = only_result(results, saga_id, timeout=stack.sweep_period() + RESULT_TIMEOUT)
    result = event.data
    assert (event.type, result["status"], result["cause"]) == (
        "dev.sagaorchestrator.saga.v1.failed",
        "failed",
        "terminated",
    )
    assert result["execution"] == execution
    assert result["uncompensated_steps"] == ["book_flight", "reserve_hotel", "charge_payment"]
    # Terminate undoes nothing.
    assert not [c for c in calls_of(stack, saga_id) if c["action"] == "compensate"]
    sweeper_log = (stack.log_dir / "saga_sweeper.log").read_text(encoding="utf-8")
    assert saga_id in sweeper_log and execution in sweeper_log


def test_a_raw_executions_api_cancel_is_swept_the_same_way(
    stack: LocalStack, results: ResultListener, orchestrator: SagaOrchestrator
) -> None:
    saga_id = new_saga_id("raw-cancel")
    execution = start_running(stack, orchestrator, hanging_trip(stack, saga_id))

    stack.factory.executions().cancel_execution(name=execution)

    result = only_result(results, saga_id, timeout=stack.sweep_period() + RESULT_TIMEOUT).data
    assert (result["status"], result["cause"], result["execution"]) == ("failed", "terminated", execution)


def test_an_execution_the_engine_failed_gets_a_failed_result_with_cause_engine_error(
    stack: LocalStack, results: ResultListener, orchestrator: SagaOrchestrator
) -> None:
    client = stack.factory.workflows()
    name = orchestrator.workflow_path
    original = client.get_workflow(name=name).source_contents
    saga_id = new_saga_id("engine-error")
    mask = field_mask_pb2.FieldMask(paths=["source_contents"])
    try:
        client.update_workflow(
            workflow=workflows_v1.Workflow(name=name, source_contents=BROKEN_SOURCE), update_mask=mask
        ).result(timeout=30)
        stack.publish_request(trip(stack, saga_id))
        execution = eventually(
            lambda: orchestrator.find_execution(saga_id),
            what="the saga's execution",
            timeout=WAIT_TIMEOUT,
            every=POLL_EVERY,
        )
    finally:
        client.update_workflow(
            workflow=workflows_v1.Workflow(name=name, source_contents=original), update_mask=mask
        ).result(timeout=30)
    assert client.get_workflow(name=name).source_contents == original

    result = only_result(results, saga_id, timeout=stack.sweep_period() + RESULT_TIMEOUT).data
    assert (result["status"], result["cause"], result["execution"]) == ("failed", "engine_error", execution)
    assert result["error"]["message"] == "engine fault injected by the e2e test"
    assert result["error"]["tags"] == ["InjectedFault"]
    assert calls_of(stack, saga_id) == []


def test_stopping_an_ended_or_unknown_saga_says_why_and_changes_nothing(
    stack: LocalStack, results: ResultListener, orchestrator: SagaOrchestrator
) -> None:
    saga_id = new_saga_id("ended")
    stack.publish_request(trip(stack, saga_id))
    done = only_result(results, saga_id)
    assert done.data["status"] == "succeeded"
    execution = done.data["execution"]
    # The result is published by the execution's last steps: it ends a moment later.
    eventually(lambda: orchestrator.get_saga_status(execution).execution_state == "SUCCEEDED", what="the end")

    for stop in (orchestrator.cancel_saga, orchestrator.terminate_saga):
        with pytest.raises(SagaNotRunningError) as ended:
            stop(saga_id, reason="too late")
        assert f"saga {saga_id!r} is not running" in str(ended.value) and "SUCCEEDED" in str(ended.value)
        with pytest.raises(SagaNotFoundError) as unknown:
            stop("e2e-no-such-saga", reason="typo")
        assert "no execution of the saga workflow has this saga id" in str(unknown.value)

    time.sleep(stack.sweep_period() * 2)  # two sweeps: nothing is published for a saga that succeeded
    assert [e.id for e in results.events(saga_id)] == [done.id]
    assert orchestrator.get_saga_status(execution).execution_state == "SUCCEEDED"
    assert not [c for c in calls_of(stack, saga_id) if c["action"] == "compensate"]


def test_cancel_saga_during_a_retried_step_compensates_every_done_step_and_publishes_one_result(
    stack: LocalStack, results: ResultListener, orchestrator: SagaOrchestrator
) -> None:
    saga_id = new_saga_id("cancel")
    options: dict[str, dict[str, Any]] = {
        "reserve_hotel": {
            "simulate": {"result": "ERROR", "times": 50},
            "execute": {"retry": {"max_attempts": 20}},
        }
    }
    stack.publish_request(trip(stack, saga_id, options))
    eventually(
        lambda: len([c for c in calls_of(stack, saga_id, ["hotel"]) if c["status"] == 500]) >= 2 or None,
        what="reserve_hotel to be retried",
        timeout=WAIT_TIMEOUT,
        every=POLL_EVERY,
    )

    execution = orchestrator.cancel_saga(saga_id, reason="customer called")

    event = only_result(results, saga_id)
    result = event.data
    assert (result["status"], result["cause"], result["execution"]) == ("compensated", "cancelled", execution)
    [audit] = result["audit"]
    assert (audit["verb"], audit["reason"]) == ("cancel", "customer called")
    assert audit["by"] and "@" in audit["by"] and audit["at"]
    assert result["uncompensated_steps"] == []
    statuses = {s["name"]: s["status"] for s in result["steps"]}
    assert statuses["book_flight"] == "compensated" and statuses["charge_payment"] == "not_run"
    undone = [(c["service"], c["action"]) for c in calls_of(stack, saga_id) if c["action"] == "compensate"]
    assert ("flight", "compensate") in undone and ("hotel", "compensate") in undone
    # The cancelled step's queued retry is gone: the participant never sees another execute.
    executes = len([c for c in calls_of(stack, saga_id, ["hotel"]) if c["action"] == "execute"])
    time.sleep(3.0)
    assert len([c for c in calls_of(stack, saga_id, ["hotel"]) if c["action"] == "execute"]) == executes
    assert not [c for c in calls_of(stack, saga_id, ["payment"])]
    assert orchestrator.get_saga_status(execution).execution_state == "SUCCEEDED"
