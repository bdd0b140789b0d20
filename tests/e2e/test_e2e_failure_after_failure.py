"""Failure after failure (issue 15) end to end on the real local stack: what a saga does when Cloud Tasks
itself misbehaves in the middle of it.

Faults come from the Cloud Tasks emulator's one-shot faults service (``localcloud.tasks.faults``), armed
for the task names of ONE execution (``<queue>/tasks/<execution id>-<step index>-``), so no other saga
of the session can meet them. The task of step ``i`` is created only once step ``i - 1`` has answered,
so each test slows its first step down (one hung attempt of 2 s, then a retry that succeeds) and arms
the fault while that step hangs.

A compensation that fails for good in the middle of the undos (the third case of issue 15) is covered by
``test_a_compensation_that_never_succeeds_fails_the_saga_and_names_the_step`` of ``test_e2e_sagas.py``.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Mapping
from typing import Any

import grpc
import pytest
from google.api_core import exceptions as gexc
from google.cloud import tasks_v2
from google.protobuf import struct_pb2, timestamp_pb2
from saga_orchestrator.workflows.saga_orchestrator import SagaOrchestrator

from devstack.provision import queue_path
from devstack.stack import LocalStack
from localcloud.tasks.faults import fault_client
from tests.e2e.results import ResultListener
from tests.e2e.test_e2e_sagas import (
    POLL_EVERY,
    TRIP,
    WAIT_TIMEOUT,
    executed_then_compensated,
    new_saga_id,
    outcome_of,
    settled,
    trip,
)
from tests.support.eventually import eventually

pytestmark = pytest.mark.e2e

# The first attempt of book_flight answers 503 after 2 s, its retry books: time to arm a fault.
SLOW_FIRST_STEP = {"simulate": {"result": "HANG", "seconds": 2, "times": 1}}


def task_prefix(stack: LocalStack, execution: str, index: int) -> str:
    """The start of the names of step ``index``'s tasks (execute and compensate) in ``execution``."""
    return f"{queue_path(stack.settings)}/tasks/{execution.rsplit('/', 1)[-1]}-{index}-"


def arm_fault(stack: LocalStack, kind: str, prefix: str) -> None:
    message = struct_pb2.Struct()
    message.update({"kind": kind, "task_prefix": prefix})
    with grpc.insecure_channel(stack.config.tasks) as channel:
        fault_client(channel)(message, timeout=10)


def fault_still_armed(stack: LocalStack, prefix: str) -> bool:
    """Whether a fault armed for ``prefix`` has not fired: a probe create (scheduled a day ahead, deleted
    at once, so never dispatched) meets it if it is still there."""
    queue = queue_path(stack.settings)
    ahead = timestamp_pb2.Timestamp()
    ahead.FromDatetime(datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1))
    probe = tasks_v2.Task(
        name=f"{prefix}probe",
        schedule_time=ahead,
        http_request=tasks_v2.HttpRequest(
            url="http://127.0.0.1:9/probe", http_method=tasks_v2.HttpMethod.POST
        ),
    )
    client = stack.factory.tasks()
    try:
        client.create_task(parent=queue, task=probe, retry=None, timeout=10)
        armed = False
    except (gexc.PermissionDenied, gexc.ServiceUnavailable):
        armed = True
    with contextlib.suppress(gexc.NotFound):  # a refused create created nothing
        client.delete_task(name=probe.name, retry=None, timeout=10)
    return armed


def start_with_a_slow_first_step(
    stack: LocalStack,
    orchestrator: SagaOrchestrator,
    saga_id: str,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """Publish a trip whose book_flight hangs once; the execution's name, found while it hangs."""
    stack.publish_request(trip(stack, saga_id, {"book_flight": SLOW_FIRST_STEP, **(options or {})}))
    execution: str = eventually(
        lambda: orchestrator.find_execution(saga_id),
        what=f"the execution of {saga_id}",
        timeout=WAIT_TIMEOUT,
        every=POLL_EVERY,
    )
    return execution


def test_a_task_create_refused_mid_saga_undoes_the_done_step_and_ends_in_one_engine_error_result(
    stack: LocalStack, results: ResultListener, orchestrator: SagaOrchestrator
) -> None:
    saga_id = new_saga_id("create-403")
    execution = start_with_a_slow_first_step(stack, orchestrator, saga_id)
    arm_fault(stack, "permission_denied", task_prefix(stack, execution, 1))
    outcome = outcome_of(stack, results, saga_id)
    result = outcome.result

    assert (result["status"], result["cause"], result["failed_step"]) == (
        "compensated",
        "engine_error",
        "reserve_hotel",
    ), result["reason"]
    assert result["error"]["code"] == 403
    assert result["uncompensated_steps"] == []
    hotel = outcome.step("reserve_hotel")
    assert hotel["status"] == "failed"
    assert (hotel["execute"]["error"]["kind"], hotel["execute"]["error"]["status_code"]) == (
        "engine_error",
        403,
    )
    assert outcome.step("book_flight")["status"] == "compensated"
    assert outcome.step("book_flight")["compensate"]["status"] == "succeeded"
    assert outcome.step("charge_payment")["status"] == "not_run"
    # The hotel was never called (its task was never created); the flight was booked once, then cancelled.
    assert outcome.seen() == [
        ("flight", "book_flight", "execute", 503),
        ("flight", "book_flight", "execute", 200),
        ("flight", "book_flight", "compensate", 200),
    ]
    assert outcome.effects() == executed_then_compensated(["book_flight"], 1)
    # The execution returned normally, so the sweeper has nothing to add: this is the only result.
    assert settled(orchestrator, execution) == "SUCCEEDED"
    assert [event.id for event in results.events(saga_id)] == [outcome.event.id]


def test_a_task_create_whose_answer_was_lost_carries_on_and_books_each_service_once(
    stack: LocalStack, results: ResultListener, orchestrator: SagaOrchestrator
) -> None:
    saga_id = new_saga_id("create-lost")
    execution = start_with_a_slow_first_step(stack, orchestrator, saga_id)
    lost = [task_prefix(stack, execution, index) for index in (1, 2)]
    for prefix in lost:
        arm_fault(stack, "lose_answer", prefix)
    outcome = outcome_of(stack, results, saga_id)
    result = outcome.result

    assert [fault_still_armed(stack, prefix) for prefix in lost] == [False, False], (
        "a lose_answer fault did not fire: the saga never met a lost create answer"
    )
    assert (result["status"], result["cause"], result["error"], result["failed_step"]) == (
        "succeeded",
        None,
        None,
        None,
    ), result["reason"]
    for name, _ in TRIP:
        assert outcome.step(name)["status"] == "succeeded"
    assert [outcome.step(name)["execute"]["attempts"] for name, _ in TRIP] == [2, 1, 1]
    # The retried creates met ALREADY_EXISTS and waited on the task already there: one call, one effect.
    assert outcome.seen() == [
        ("flight", "book_flight", "execute", 503),
        ("flight", "book_flight", "execute", 200),
        ("hotel", "reserve_hotel", "execute", 200),
        ("payment", "charge_payment", "execute", 200),
    ]
    assert outcome.effects() == [(service, name, "execute") for name, service in TRIP]
    assert settled(orchestrator, execution) == "SUCCEEDED"
    assert [event.id for event in results.events(saga_id)] == [outcome.event.id]
