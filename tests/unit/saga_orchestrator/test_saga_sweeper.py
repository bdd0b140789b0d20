"""The sweeper against the local Workflows engine and Pub/Sub emulator (real executions, real cancels)."""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from google.cloud.workflows import executions_v1
from saga_orchestrator.clients import ClientFactory
from saga_orchestrator.errors import InvalidRequestError
from saga_orchestrator.events import event_id
from saga_orchestrator.executions import WorkflowExecutions
from saga_orchestrator.pubsub import PubsubPublisher
from saga_orchestrator.result import SagaResult
from saga_orchestrator.sweeper import Sweeper, window_seconds

REPO = Path(__file__).parents[3]
WORKFLOW = "projects/shop/locations/us-central1/workflows/saga-orchestrator"
TOPIC = "projects/shop/topics/saga-results"
# Waits an hour, or raises the argument's "raise" at once (an engine error: the execution FAILS).
SOURCE = """main:
  params: [args]
  steps:
    - route:
        switch:
          - condition: ${"raise" in args}
            next: fail
    - wait:
        call: sys.sleep
        args:
          seconds: 3600
        next: end
    - fail:
        raise: ${args["raise"]}
"""


@pytest.fixture
def cloud(local_cloud):
    local_cloud.deploy_workflow(WORKFLOW, SOURCE)
    local_cloud.create_topic(TOPIC)
    return local_cloud


@pytest.fixture
def factory(cloud):
    clients = ClientFactory(cloud.env)
    yield clients
    clients.close()


def sweeper(factory: ClientFactory, **options: Any) -> Sweeper:
    executions = WorkflowExecutions(factory.executions, WORKFLOW)
    publisher = PubsubPublisher(lambda: factory.publisher_api(), TOPIC)
    return Sweeper(executions, publisher, workflow_path=WORKFLOW, **options)


def start(factory: ClientFactory, argument: dict, saga_id: str | None) -> str:
    labels = {"saga_id": saga_id} if saga_id else {}
    execution = factory.executions().create_execution(
        parent=WORKFLOW, execution=executions_v1.Execution(argument=json.dumps(argument), labels=labels)
    )
    return str(execution.name)


def ended(factory: ClientFactory, name: str) -> str:
    for _ in range(200):
        state = factory.executions().get_execution(name=name).state.name
        if state != "ACTIVE":
            return state
        time.sleep(0.02)
    raise AssertionError(f"{name} is still running")


def test_a_cancelled_saga_gets_one_failed_result_with_cause_terminated_and_a_repeat_has_the_same_id(
    cloud, factory
):
    argument = {"saga_id": "trip-1", "steps": [{"name": "book"}, {"name": "pay"}], "metadata": {"k": "v"}}
    name = start(factory, argument, "trip-1")
    factory.executions().cancel_execution(name=name)

    first = sweeper(factory).sweep()
    again = sweeper(factory).sweep()

    [message, repeat] = cloud.published(TOPIC)
    data = json.loads(message.data)
    assert data["status"] == "failed" and data["cause"] == "terminated"
    assert (data["saga_id"], data["execution"], data["metadata"]) == ("trip-1", name, {"k": "v"})
    assert data["uncompensated_steps"] == ["book", "pay"]
    assert [s["status"] for s in data["steps"]] == ["unknown", "unknown"]
    assert message.attributes["ce-type"] == "dev.sagaorchestrator.saga.v1.failed"
    assert message.attributes["ce-subject"] == "trip-1"
    expected_id = event_id(SagaResult(saga_id="trip-1", status="failed", execution=name))
    assert message.attributes["ce-id"] == repeat.attributes["ce-id"] == expected_id
    assert [s.cause for s in first] == [s.cause for s in again] == ["terminated"]
    schema = json.loads((REPO / "schemas" / "saga-result.v2.schema.json").read_text(encoding="utf-8"))
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(data)) == []


def test_a_failed_execution_gets_cause_engine_error_with_the_execution_error(cloud, factory):
    name = start(factory, {"raise": {"message": "boom", "tags": ["TestError"]}}, "trip-2")
    assert ended(factory, name) == "FAILED"

    [swept] = sweeper(factory).sweep()

    [message] = cloud.published(TOPIC)
    data = json.loads(message.data)
    assert (swept.saga_id, swept.execution, data["cause"]) == ("trip-2", name, "engine_error")
    assert data["error"]["message"] == "boom" and data["error"]["tags"] == ["TestError"]


def test_running_and_unlabelled_executions_and_a_yielded_duplicate_start_are_not_swept(cloud, factory):
    start(factory, {"saga_id": "trip-3"}, "trip-3")  # running
    factory.executions().cancel_execution(name=start(factory, {}, None))  # not a saga
    time.sleep(0.01)
    duplicate = start(factory, {"saga_id": "trip-3"}, "trip-3")  # started later, yields and cancels itself
    factory.executions().cancel_execution(name=duplicate)

    assert sweeper(factory).sweep() == []
    assert cloud.published(TOPIC) == []


def test_an_execution_that_ended_before_the_window_is_left_alone(cloud, factory):
    factory.executions().cancel_execution(name=start(factory, {}, "trip-4"))
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=120)

    assert sweeper(factory, window_seconds=60, clock=lambda: later).sweep() == []
    assert len(sweeper(factory, window_seconds=600, clock=lambda: later).sweep()) == 1


def test_the_window_comes_from_the_environment_and_a_bad_one_is_named():
    assert window_seconds({}) == 660  # deployment.env: two 5-minute sweep periods and a minute
    assert window_seconds({"SAGA_SWEEP_WINDOW_SECONDS": "60"}) == 60
    with pytest.raises(InvalidRequestError) as caught:
        window_seconds({"SAGA_SWEEP_WINDOW_SECONDS": "soon"})
    assert caught.value.errors[0].field == "SAGA_SWEEP_WINDOW_SECONDS"
