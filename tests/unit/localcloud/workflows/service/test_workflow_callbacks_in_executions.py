"""Callbacks as a workflow sees them: payloads sent before the wait are consumed in order, a wait times
out on the engine's clock, unauthenticated requests never reach the execution; plus connectors called
from a running workflow against the local emulators."""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import pytest
import requests

from tests.support.eventually import assert_eventually

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("localcloud.workflows.engine.interpreter") is None,
    reason="the Workflows interpreter (localcloud.workflows.engine.interpreter) is not there yet",
)

EARLY = """
main:
  steps:
    - make:
        call: events.create_callback_endpoint
        args:
          http_callback_method: PUT
        result: cb
    - nap:
        call: sys.sleep
        args:
          seconds: 100
    - first:
        call: events.await_callback
        args:
          callback: ${cb}
          timeout: 10
        result: one
    - second:
        call: events.await_callback
        args:
          callback: ${cb}
          timeout: 10
        result: two
    - done:
        return:
          bodies: ${[one.http_request.body, two.http_request.body]}
          method: ${one.http_request.method}
          query: ${one.http_request.query}
          type: ${one.type}
"""

TIMEOUT = """
main:
  steps:
    - make:
        call: events.create_callback_endpoint
        result: cb
    - wait:
        try:
          call: events.await_callback
          args:
            callback: ${cb}
            timeout: 30
          result: req
        except:
          as: e
          steps:
            - report:
                return: ${e.tags}
    - done:
        return: ${req.http_request.body}
"""


def test_payloads_sent_before_the_wait_are_consumed_in_order(manual_engine: Any) -> None:
    engine = manual_engine
    workflow = engine.deploy(EARLY)
    started = engine.execute(workflow)
    callback = engine.wait_for_callback(started.name)
    assert callback["method"] == "PUT"
    auth = {"Authorization": f"Bearer {engine.token()}"}
    url = engine.callback_url(callback)
    assert requests.put(url + "?approved=yes", json={"n": 1}, headers=auth, timeout=10).status_code == 200
    assert requests.put(url, json={"n": 2}, headers=auth, timeout=10).status_code == 200

    listed = engine.wait_for_callback(started.name)
    assert len(listed["availablePayloads"]) == 2 and listed["waiters"] == "0"
    engine.advance(100)
    done = engine.wait_until(started.name)
    assert done.state.name == "SUCCEEDED", done.error
    assert json.loads(done.result) == {
        "bodies": [{"n": 1}, {"n": 2}],
        "method": "PUT",
        "query": {"approved": ["yes"]},
        "type": "HTTP",
    }


def test_wait_without_a_request_times_out_with_timeout_error(manual_engine: Any) -> None:
    engine = manual_engine
    workflow = engine.deploy(TIMEOUT)
    started = engine.execute(workflow)
    callback = engine.wait_for_callback(started.name, waiters=1)
    unauthenticated = requests.post(engine.callback_url(callback), json={"sneaky": True}, timeout=10)
    assert unauthenticated.status_code == 401
    engine.advance(29)
    assert engine.executions.get_execution(name=started.name).state.name == "ACTIVE"
    engine.advance(1)
    done = engine.wait_until(started.name)
    assert json.loads(done.result) == ["TimeoutError"]


def test_execution_released_by_a_callback_returns_its_body(engine: Any) -> None:
    workflow = engine.deploy(TIMEOUT)
    started = engine.execute(workflow)
    callback = engine.wait_for_callback(started.name, waiters=1)
    response = requests.post(
        engine.callback_url(callback),
        json={"status": "succeeded", "output": {"booking": "B-1"}},
        headers={"Authorization": f"Bearer {engine.token()}"},
        timeout=10,
    )
    assert response.status_code == 200
    done = engine.wait_until(started.name)
    assert json.loads(done.result) == {"status": "succeeded", "output": {"booking": "B-1"}}
    gone = requests.post(
        engine.callback_url(callback),
        json={},
        headers={"Authorization": f"Bearer {engine.token()}"},
        timeout=10,
    )
    assert gone.status_code == 404


CONNECTORS = """
main:
  params: [args]
  steps:
    - key:
        call: googleapis.secretmanager.v1.projects.secrets.versions.accessString
        args:
          secret_id: api-key
        result: key
    - task:
        call: googleapis.cloudtasks.v2.projects.locations.queues.tasks.create
        args:
          parent: ${args.queue}
          body:
            task:
              name: ${args.queue + "/tasks/" + sys.get_env("GOOGLE_CLOUD_WORKFLOW_EXECUTION_ID") + "-0-execute"}
              httpRequest:
                url: http://127.0.0.1:9/step
                httpMethod: POST
                headers:
                  Content-Type: application/json
                body: '${base64.encode(json.encode({"n": 1}))}'
        result: task
    - again:
        try:
          call: googleapis.cloudtasks.v2.projects.locations.queues.tasks.create
          args:
            parent: ${args.queue}
            body:
              task:
                name: ${task.name}
                httpRequest:
                  url: http://127.0.0.1:9/step
        except:
          as: e
          steps:
            - seen:
                assign:
                  - duplicate: ${e.code}
    - forget:
        call: googleapis.cloudtasks.v2.projects.locations.queues.tasks.delete
        args:
          name: ${task.name}
    - done:
        return:
          key_length: ${len(key)}
          task: ${task.name}
          created: ${task.createTime}
          duplicate: ${duplicate}
"""


def test_connectors_reach_the_local_emulators_from_a_workflow(engine: Any) -> None:
    import pytest

    if not (
        engine.has_module("localcloud.tasks.server") and engine.has_module("localcloud.secretmanager.server")
    ):
        pytest.skip("the Cloud Tasks and Secret Manager emulators are not there yet")
    import grpc
    from google.cloud import secretmanager_v1, tasks_v2
    from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
        SecretManagerServiceGrpcTransport,
    )
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

    secrets = secretmanager_v1.SecretManagerServiceClient(
        transport=SecretManagerServiceGrpcTransport(
            channel=grpc.insecure_channel(engine.ctx.config.secretmanager)
        )
    )
    secret = secrets.create_secret(
        parent="projects/local-project",
        secret_id="api-key",
        secret=secretmanager_v1.Secret(replication={"automatic": {}}),
    )
    secrets.add_secret_version(parent=secret.name, payload=secretmanager_v1.SecretPayload(data=b"0123456789"))
    tasks = tasks_v2.CloudTasksClient(
        transport=CloudTasksGrpcTransport(channel=grpc.insecure_channel(engine.ctx.config.tasks))
    )
    queue = "projects/local-project/locations/us-central1/queues/saga-tasks"
    tasks.create_queue(
        parent="projects/local-project/locations/us-central1", queue=tasks_v2.Queue(name=queue)
    )
    tasks.pause_queue(name=queue)  # keep the task from being dispatched to the dead URL

    workflow = engine.deploy(CONNECTORS)
    started = engine.execute(workflow, {"queue": queue})
    done = engine.wait_until(started.name)
    assert done.state.name == "SUCCEEDED", done.error
    result = json.loads(done.result)
    execution_id = started.name.rsplit("/", 1)[1]
    assert result["key_length"] == 10
    assert result["task"] == f"{queue}/tasks/{execution_id}-0-execute"
    assert result["created"].endswith("Z")
    assert result["duplicate"] == 409
    assert "0123456789" not in done.result  # the secret value stays inside the execution

    def task_is_deleted() -> None:
        assert [t.name for t in tasks.list_tasks(parent=queue)] == []

    assert_eventually(task_is_deleted)
