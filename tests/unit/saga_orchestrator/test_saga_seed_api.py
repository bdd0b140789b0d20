from __future__ import annotations

import datetime
import json
import threading
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from saga_orchestrator.callbacks import ExecutionCallbacks
from saga_orchestrator.clients import ClientFactory
from saga_orchestrator.errors import (
    CancelDeliveryError,
    InvalidRequestError,
    SagaError,
    SagaNotFoundError,
    SagaNotRunningError,
    TaskAlreadyExistsError,
    VerbNotApplicableError,
)
from saga_orchestrator.httpclient import HttpClient
from saga_orchestrator.ports import StartOutcome
from saga_orchestrator.settings import default_start_bucket
from saga_orchestrator.tasks.task_manager import TaskManager
from saga_orchestrator.validation import validate_request
from saga_orchestrator.workflows.saga_orchestrator import SagaOrchestrator

from tests.support.http import ScriptedResponse
from tests.unit.localcloud.storage.running import RunningStorage

STEPS = [
    {
        "name": "create_booking",
        "execute_url": "http://localhost:8081/execute",
        "execute_payload": {"action": "create"},
        "compensate_url": "http://localhost:8081/compensate",
        "compensate_payload": {"action": "cancel"},
    }
]


QUEUE = "projects/shop/locations/us-central1/queues/saga-tasks"


def workflow(location: str = "us-central1") -> str:
    return f"projects/shop/locations/{location}/workflows/saga-orchestrator"


@pytest.fixture
def clients(local_cloud):
    """Clients of the local cloud and of a Cloud Storage emulator holding the project's start claims."""
    local_cloud.deploy_workflow(workflow())
    local_cloud.create_paused_queue(QUEUE)
    storage = RunningStorage()
    env = {**local_cloud.env, "STORAGE_EMULATOR_HOST": storage.url}
    factory = ClientFactory(env)
    factory.storage().create_bucket(
        env.get("SAGA_START_BUCKET") or default_start_bucket("shop"), project="shop"
    )
    yield factory
    factory.close()
    storage.close()


def test_execute_saga_starts_one_labelled_execution_with_the_normalized_argument(local_cloud, clients):
    local_cloud.deploy_workflow(workflow("europe-west1"))
    orchestrator = SagaOrchestrator("shop", "europe-west1", "saga-orchestrator", clients=clients)
    name = orchestrator.execute_saga(STEPS, saga_id="trip-42", metadata={"order": 1})
    assert name.startswith("projects/shop/locations/europe-west1/workflows/saga-orchestrator/executions/")
    [execution] = local_cloud.executions(workflow("europe-west1"))
    assert execution.name == name
    assert dict(execution.labels) == {"saga_id": "trip-42"}
    argument = json.loads(execution.argument)
    assert argument["saga_id"] == "trip-42"
    assert argument["metadata"] == {"order": 1}
    assert argument["steps"][0]["execute"]["url"] == "http://localhost:8081/execute"
    assert argument["event_id"] is None


def test_execute_saga_with_the_same_saga_id_returns_the_existing_execution(local_cloud, clients):
    orchestrator = SagaOrchestrator("shop", "us-central1", "saga-orchestrator", clients=clients)
    first = orchestrator.execute_saga(STEPS, saga_id="trip-42")
    assert orchestrator.execute_saga(STEPS, saga_id="trip-42") == first
    assert orchestrator.execute_saga(STEPS, saga_id="trip-43") != first
    assert len(local_cloud.executions(workflow())) == 2


def test_racing_starts_of_one_saga_leave_one_execution_and_all_answer_with_it(local_cloud, clients):
    orchestrator = SagaOrchestrator("shop", "us-central1", "saga-orchestrator", clients=clients)
    request = validate_request({"saga_id": "trip-42", "steps": STEPS}, orchestrator.settings)
    gate = threading.Barrier(12)
    outcomes: list[StartOutcome] = []

    def start(create: bool) -> None:
        gate.wait()  # start() and create() both claim the saga id first: neither looks, neither races
        outcomes.append(orchestrator.create(request) if create else orchestrator.start(request))

    threads = [threading.Thread(target=start, args=(i % 2 == 0,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    [execution] = local_cloud.executions(workflow())
    assert execution.state.name == "ACTIVE"
    assert [o.execution_name for o in outcomes] == [execution.name] * 12
    assert [o.created for o in outcomes].count(True) == 1


def test_execute_saga_refuses_an_invalid_saga_before_calling_workflows(local_cloud, clients):
    orchestrator = SagaOrchestrator("shop", "us-central1", "saga-orchestrator", clients=clients)
    with pytest.raises(InvalidRequestError) as caught:
        orchestrator.execute_saga(
            [{"name": "x", "execute_url": "http://169.254.169.254/"}], deadline_seconds=0
        )
    assert [e.field for e in caught.value.errors] == ["deadline_seconds", "steps[0].execute_url"]
    assert local_cloud.executions(workflow()) == []


def test_status_and_terminate(local_cloud, clients):
    orchestrator = SagaOrchestrator("shop", "us-central1", "saga-orchestrator", clients=clients)
    name = orchestrator.execute_saga(STEPS)
    status = orchestrator.get_saga_status(name)
    assert (status.state, status.execution_state, status.result, status.error) == (
        "running",
        "ACTIVE",
        None,
        None,
    )
    assert [step.name for step in status.steps] == [step["name"] for step in STEPS]
    assert status.saga_id and status.saga_id.startswith("saga-")
    assert orchestrator.terminate_saga(name, reason="stuck for a day") == "CANCELLED"
    assert orchestrator.get_saga_status(name).execution_state == "CANCELLED"


def test_terminate_finds_the_saga_by_its_id_and_refuses_once_it_ended(local_cloud, clients):
    orchestrator = SagaOrchestrator("shop", "us-central1", "saga-orchestrator", clients=clients)
    name = orchestrator.execute_saga(STEPS, saga_id="trip-9")
    assert orchestrator.terminate_saga("trip-9", reason="wrong booking") == "CANCELLED"
    with pytest.raises(SagaNotRunningError) as caught:
        orchestrator.terminate_saga("trip-9", reason="again")
    assert (caught.value.execution, caught.value.state) == (name, "CANCELLED")
    assert "is not running" in str(caught.value) and "CANCELLED" in str(caught.value)


def test_stopping_needs_a_reason_and_an_existing_saga(local_cloud, clients):
    orchestrator = SagaOrchestrator("shop", "us-central1", "saga-orchestrator", clients=clients)
    name = orchestrator.execute_saga(STEPS, saga_id="trip-8")
    for stop in (orchestrator.cancel_saga, orchestrator.terminate_saga):
        with pytest.raises(InvalidRequestError) as refused:
            stop(name, reason="  ")
        assert [e.field for e in refused.value.errors] == ["reason"]
        for unknown in ("no-such-saga", workflow() + "/executions/missing", "projects/x/executions/y"):
            with pytest.raises(SagaNotFoundError) as missing:
                stop(unknown, reason="test")
            assert unknown in str(missing.value)
    assert orchestrator.get_saga_status(name).execution_state == "ACTIVE"


def test_cancel_sends_the_cancel_message_to_the_sagas_callback_endpoint(local_cloud, clients, http_server):
    callback = workflow() + "/executions/E/callbacks/C"
    listing = json.dumps({"callbacks": [{"name": callback, "method": "POST", "waiters": "1"}]})
    orchestrator = operator_orchestrator(clients, http_server)
    name = orchestrator.execute_saga(STEPS, saga_id="trip-7")
    http_server.script(f"/v1/{name}/callbacks", ScriptedResponse(body=listing.encode()))

    assert orchestrator.cancel_saga("trip-7", reason="customer called") == name

    [sent] = http_server.requests_to(f"/v1/{callback}")
    body = json.loads(sent.body)
    assert sent.method == "POST" and sent.headers["Authorization"] == "Bearer operator-token"
    assert {k: body[k] for k in ("verb", "step", "reason", "by")} == {
        "verb": "cancel",
        "step": None,
        "reason": "customer called",
        "by": "ops@shop.iam.gserviceaccount.com",
    }
    assert datetime.datetime.fromisoformat(body["at"].replace("Z", "+00:00")).tzinfo is not None


def test_cancel_refuses_an_ended_saga_and_sends_nothing(local_cloud, clients, http_server):
    orchestrator = operator_orchestrator(clients, http_server)
    name = orchestrator.execute_saga(STEPS, saga_id="trip-6")
    orchestrator.terminate_saga(name, reason="test")
    with pytest.raises(SagaNotRunningError, match="ended CANCELLED"):
        orchestrator.cancel_saga("trip-6", reason="too late")
    assert http_server.requests == []


def test_a_saga_that_ends_while_the_message_is_on_its_way_is_reported_by_its_id_and_end_state(
    local_cloud, clients, http_server
):
    orchestrator = operator_orchestrator(clients, http_server)
    name = orchestrator.execute_saga(STEPS, saga_id="trip-4")
    # It ends while the callbacks are listed: the endpoint is gone (404) by the time the list answers.
    http_server.script(f"/v1/{name}/callbacks", ScriptedResponse(status=404, delay_seconds=1.0))
    ender = threading.Timer(0.1, orchestrator.terminate_saga, args=(name,), kwargs={"reason": "test"})
    ender.start()
    with pytest.raises(SagaNotRunningError) as ended:
        orchestrator.cancel_saga("trip-4", reason="customer called")
    ender.join()
    assert (ended.value.saga, ended.value.execution, ended.value.state) == ("trip-4", name, "CANCELLED")
    assert str(ended.value) == f"saga 'trip-4' is not running: its execution {name} ended CANCELLED"


def test_a_callback_refusal_from_an_execution_that_ended_says_the_saga_ended(
    local_cloud, clients, http_server
):
    orchestrator = operator_orchestrator(clients, http_server)
    name = orchestrator.execute_saga(STEPS, saga_id="trip-3")
    # The execution ends while the callbacks are listed, and the listing answers 400 (not 404).
    http_server.script(f"/v1/{name}/callbacks", ScriptedResponse(status=400, delay_seconds=1.0))
    ender = threading.Timer(0.1, orchestrator.terminate_saga, args=(name,), kwargs={"reason": "test"})
    ender.start()
    with pytest.raises(SagaNotRunningError) as ended:
        orchestrator.cancel_saga("trip-3", reason="customer called")
    ender.join()
    assert (ended.value.saga, ended.value.state) == ("trip-3", "CANCELLED")


def test_a_callback_refusal_from_a_running_execution_stands(local_cloud, clients, http_server):
    orchestrator = operator_orchestrator(clients, http_server)
    name = orchestrator.execute_saga(STEPS, saga_id="trip-2")
    http_server.script(f"/v1/{name}/callbacks", ScriptedResponse(status=400))
    with pytest.raises(CancelDeliveryError, match="HTTP 400"):
        orchestrator.cancel_saga("trip-2", reason="customer called")
    assert orchestrator.get_saga_status("trip-2").execution_state == "ACTIVE"


def test_a_decision_the_saga_cannot_take_now_is_refused_and_nothing_is_sent(
    local_cloud, clients, http_server
):
    orchestrator = operator_orchestrator(clients, http_server)
    orchestrator.execute_saga(STEPS, saga_id="trip-5")
    with pytest.raises(VerbNotApplicableError) as unknown:
        orchestrator.retry_step("trip-5", "no_such_step", reason="try again")
    assert "has no step 'no_such_step'" in str(unknown.value) and "create_booking" in str(unknown.value)
    for decide in (orchestrator.skip_step, orchestrator.retry_step):
        with pytest.raises(VerbNotApplicableError) as running:
            decide("trip-5", "create_booking", reason="by hand")
        assert "is not waiting for a decision (not stuck nor parked" in str(running.value)
    with pytest.raises(VerbNotApplicableError, match="not waiting for a decision"):
        orchestrator.compensate_saga("trip-5", reason="give up")
    with pytest.raises(InvalidRequestError):
        orchestrator.skip_step("trip-5", "create_booking", reason="")
    assert http_server.requests == []
    orchestrator.terminate_saga("trip-5", reason="test")
    with pytest.raises(SagaNotRunningError):
        orchestrator.retry_step("trip-5", "create_booking", reason="too late")


def operator_orchestrator(clients: ClientFactory, http_server: Any) -> SagaOrchestrator:
    """The orchestrator whose callbacks go to ``http_server`` as OperatorAccount."""
    return SagaOrchestrator(
        "shop",
        "us-central1",
        "saga-orchestrator",
        clients=clients,
        callbacks=ExecutionCallbacks(http_server.url("/"), HttpClient(), OperatorAccount()),
    )


class OperatorAccount:
    def access_token(self) -> str:
        return "operator-token"

    def identity(self) -> str:
        return "ops@shop.iam.gserviceaccount.com"


def test_a_workflows_api_error_surfaces_as_the_google_exception(clients):
    orchestrator = SagaOrchestrator("shop", "us-central1", "not-deployed", clients=clients)
    with pytest.raises(gexc.NotFound):
        orchestrator.execute_saga(STEPS, saga_id="trip-1")


def test_create_retry_task_routes_the_call_through_the_step_executor(local_cloud, clients):
    manager = TaskManager(
        "shop",
        "us-central1",
        "saga-tasks",
        clients=clients,
        executor_url="https://step-executor.example.run.app/",
        invoker_email="invoker@shop.iam.gserviceaccount.com",
    )
    when = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)).replace(microsecond=0)
    task = manager.create_retry_task(
        "http://localhost:8081/api",
        {"data": "value"},
        7,
        task_id="order-1",
        schedule_time=when,
        headers={"X-Tenant": "t"},
    )
    assert task.name == "projects/shop/locations/us-central1/queues/saga-tasks/tasks/order-1"
    stored = local_cloud.task(task.name)
    request = stored.http_request
    assert request.url == "https://step-executor.example.run.app/"
    assert request.oidc_token.service_account_email == "invoker@shop.iam.gserviceaccount.com"
    assert request.oidc_token.audience == "https://step-executor.example.run.app/"
    assert request.headers["Content-Type"] == "application/json"
    envelope = json.loads(request.body)
    assert envelope["callback_url"] is None
    assert envelope["step_name"] == "order-1"
    assert envelope["call"]["url"] == "http://localhost:8081/api"
    assert envelope["call"]["payload"] == {"data": "value"}
    assert envelope["call"]["headers"] == {"X-Tenant": "t"}
    assert envelope["call"]["max_attempts"] == 7
    assert stored.schedule_time.timestamp() == when.timestamp()
    assert stored.dispatch_deadline.total_seconds() == 120


def test_a_named_task_created_twice_is_a_clear_error(local_cloud, clients):
    manager = TaskManager(
        "shop", "us-central1", "saga-tasks", clients=clients, executor_url="http://127.0.0.1:1/"
    )
    manager.create_retry_task("http://localhost:8081/api", {}, 3, task_id="once", schedule_time=10)
    with pytest.raises(TaskAlreadyExistsError) as caught:
        manager.create_retry_task("http://localhost:8081/api", {}, 3, task_id="once")
    assert caught.value.task_name.endswith("/tasks/once")


def test_max_attempts_and_host_are_checked_before_creating(local_cloud, clients):
    manager = TaskManager(
        "shop", "us-central1", "saga-tasks", clients=clients, executor_url="http://127.0.0.1:1/"
    )
    with pytest.raises(InvalidRequestError) as caught:
        manager.create_retry_task("http://evil.test/api", {}, 50)
    assert [e.field for e in caught.value.errors] == ["task.url", "task.retry.max_attempts"]
    assert local_cloud.tasks(QUEUE) == []


def test_without_an_executor_url_the_task_manager_says_why():
    manager = TaskManager("shop", "us-central1", "saga-tasks", clients=ClientFactory({}))
    with pytest.raises(SagaError, match="SAGA_STEP_EXECUTOR_URL"):
        manager.create_retry_task("http://localhost:8081/api", {}, 3)


def test_the_executor_url_can_come_from_the_factory_environment(local_cloud):
    local_cloud.create_paused_queue(QUEUE)
    factory = ClientFactory({**local_cloud.env, "SAGA_STEP_EXECUTOR_URL": "http://127.0.0.1:9/"})
    try:
        task = TaskManager("shop", "us-central1", "saga-tasks", clients=factory).create_retry_task(
            "http://localhost:8081/api", {}, 2
        )
        assert local_cloud.task(task.name).http_request.url == "http://127.0.0.1:9/"
    finally:
        factory.close()
