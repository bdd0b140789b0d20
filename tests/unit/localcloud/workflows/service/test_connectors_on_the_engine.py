"""Workflows calling connectors of each emulated service, on the engine, against the real emulators:
Pub/Sub (create a topic and a subscription, publish, pull, acknowledge, delete), Cloud Tasks (create a
queue, create/get/list/delete a task), Secret Manager (create a secret, add versions, access them),
Workflows Executions (start another workflow and wait for its result) and Workflows (a long-running
operation, polled or not)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.api_core import exceptions as gexc

PUBSUB = """
main:
  params: [args]
  steps:
    - init:
        assign:
          - project: ${sys.get_env("GOOGLE_CLOUD_PROJECT_ID")}
          - topic: ${"projects/" + project + "/topics/" + args.id}
          - subscription: ${"projects/" + project + "/subscriptions/" + args.id}
    - create_topic:
        call: googleapis.pubsub.v1.projects.topics.create
        args:
          name: ${topic}
          body:
            labels:
              team: saga
        result: created_topic
    - create_subscription:
        call: googleapis.pubsub.v1.projects.subscriptions.create
        args:
          name: ${subscription}
          body:
            topic: ${topic}
            ackDeadlineSeconds: 20
        result: created_subscription
    - publish:
        call: googleapis.pubsub.v1.projects.topics.publish
        args:
          topic: ${topic}
          body:
            messages:
              - data: ${base64.encode(text.encode("hello"))}
                attributes:
                  kind: greeting
        result: published
    - pull:
        call: googleapis.pubsub.v1.projects.subscriptions.pull
        args:
          subscription: ${subscription}
          body:
            maxMessages: 10
        result: pulled
    - acknowledge:
        call: googleapis.pubsub.v1.projects.subscriptions.acknowledge
        args:
          subscription: ${subscription}
          body:
            ackIds: ${[pulled.receivedMessages[0].ackId]}
        result: acknowledged
    - listed:
        call: googleapis.pubsub.v1.projects.topics.subscriptions.list
        args:
          topic: ${topic}
        result: topic_subscriptions
    - delete_subscription:
        call: googleapis.pubsub.v1.projects.subscriptions.delete
        args:
          subscription: ${subscription}
    - delete_topic:
        call: googleapis.pubsub.v1.projects.topics.delete
        args:
          topic: ${topic}
    - get_deleted:
        try:
          call: googleapis.pubsub.v1.projects.topics.get
          args:
            topic: ${topic}
        except:
          as: e
          steps:
            - note:
                assign:
                  - missing: ${e.code}
    - done:
        return:
          topic: ${created_topic.name}
          labels: ${created_topic.labels}
          ack_deadline: ${created_subscription.ackDeadlineSeconds}
          published: ${len(published.messageIds)}
          data: ${text.decode(base64.decode(pulled.receivedMessages[0].message.data))}
          attributes: ${pulled.receivedMessages[0].message.attributes}
          same_id: ${pulled.receivedMessages[0].message.messageId == published.messageIds[0]}
          acknowledged: ${acknowledged}
          subscriptions: ${topic_subscriptions.subscriptions}
          missing: ${missing}
"""


def test_a_workflow_creates_a_topic_publishes_pulls_and_cleans_up(engine: Any) -> None:
    if not engine.has_module("localcloud.pubsub.server"):
        pytest.skip("the Pub/Sub emulator is not there")
    done = engine.wait_until(engine.execute(engine.deploy(PUBSUB), {"id": "greetings"}).name)
    assert done.state.name == "SUCCEEDED", done.error
    assert json.loads(done.result) == {
        "topic": "projects/local-project/topics/greetings",
        "labels": {"team": "saga"},
        "ack_deadline": 20,
        "published": 1,
        "data": "hello",
        "attributes": {"kind": "greeting"},
        "same_id": True,
        "acknowledged": {},
        "subscriptions": ["projects/local-project/subscriptions/greetings"],
        "missing": 404,
    }


TASKS = """
main:
  params: [args]
  steps:
    - init:
        assign:
          - location: ${"projects/" + sys.get_env("GOOGLE_CLOUD_PROJECT_ID") + "/locations/us-central1"}
          - queue: ${location + "/queues/" + args.queue}
    - create_queue:
        call: googleapis.cloudtasks.v2.projects.locations.queues.create
        args:
          parent: ${location}
          body:
            name: ${queue}
            retryConfig:
              maxAttempts: 2
        result: created_queue
    - pause:
        call: googleapis.cloudtasks.v2.projects.locations.queues.pause
        args:
          name: ${queue}
        result: paused
    - create_task:
        call: googleapis.cloudtasks.v2.projects.locations.queues.tasks.create
        args:
          parent: ${queue}
          body:
            task:
              name: ${queue + "/tasks/first"}
              httpRequest:
                url: http://127.0.0.1:9/never
                httpMethod: PUT
                body: '${base64.encode(json.encode({"n": 1}))}'
        result: created_task
    - get_task:
        call: googleapis.cloudtasks.v2.projects.locations.queues.tasks.get
        args:
          name: ${created_task.name}
          responseView: FULL
        result: got
    - list_tasks:
        call: googleapis.cloudtasks.v2.projects.locations.queues.tasks.list
        args:
          parent: ${queue}
          pageSize: 10
        result: listed
    - delete_task:
        call: googleapis.cloudtasks.v2.projects.locations.queues.tasks.delete
        args:
          name: ${created_task.name}
        result: deleted
    - get_deleted:
        try:
          call: googleapis.cloudtasks.v2.projects.locations.queues.tasks.get
          args:
            name: ${created_task.name}
        except:
          as: e
          steps:
            - note:
                assign:
                  - missing: ${e.body.error.status}
    - delete_queue:
        call: googleapis.cloudtasks.v2.projects.locations.queues.delete
        args:
          name: ${queue}
    - done:
        return:
          max_attempts: ${created_queue.retryConfig.maxAttempts}
          state: ${paused.state}
          method: ${got.httpRequest.httpMethod}
          body: ${json.decode(base64.decode(got.httpRequest.body))}
          listed: ${len(listed.tasks)}
          deleted: ${deleted}
          missing: ${missing}
"""


def test_a_workflow_creates_a_queue_and_creates_gets_lists_and_deletes_a_task(engine: Any) -> None:
    if not engine.has_module("localcloud.tasks.server"):
        pytest.skip("the Cloud Tasks emulator is not there")
    done = engine.wait_until(engine.execute(engine.deploy(TASKS), {"queue": "connector-queue"}).name)
    assert done.state.name == "SUCCEEDED", done.error
    assert json.loads(done.result) == {
        "max_attempts": 2,
        "state": "PAUSED",
        "method": "PUT",
        "body": {"n": 1},
        "listed": 1,
        "deleted": {},
        "missing": "NOT_FOUND",
    }


SECRETS = """
main:
  params: [args]
  steps:
    - init:
        assign:
          - project: ${sys.get_env("GOOGLE_CLOUD_PROJECT_ID")}
    - create_secret:
        call: googleapis.secretmanager.v1.projects.secrets.create
        args:
          parent: ${"projects/" + project}
          secretId: ${args.id}
          body:
            replication:
              automatic: {}
        result: secret
    - add_version:
        call: googleapis.secretmanager.v1.projects.secrets.addVersion
        args:
          parent: ${secret.name}
          body:
            payload:
              data: ${base64.encode(text.encode("first"))}
        result: first
    - add_version_string:
        call: googleapis.secretmanager.v1.projects.secrets.addVersionString
        args:
          secret_id: ${args.id}
          data: second
        result: second
    - access_first:
        call: googleapis.secretmanager.v1.projects.secrets.versions.access
        args:
          name: ${first.name}
        result: accessed
    - access_latest_string:
        call: googleapis.secretmanager.v1.projects.secrets.versions.accessString
        args:
          secret_id: ${args.id}
        result: latest
    - disable_first:
        call: googleapis.secretmanager.v1.projects.secrets.versions.disable
        args:
          name: ${first.name}
        result: disabled
    - list_versions:
        call: googleapis.secretmanager.v1.projects.secrets.versions.list
        args:
          parent: ${secret.name}
        result: versions
    - done:
        return:
          secret: ${secret.name}
          first: ${text.decode(base64.decode(accessed.payload.data))}
          crc_is_text: ${get_type(accessed.payload.dataCrc32c) == "string"}
          second_name: ${second.name}
          latest: ${latest}
          disabled: ${disabled.state}
          versions: ${versions.totalSize}
"""


def test_a_workflow_creates_a_secret_adds_versions_and_accesses_them(engine: Any) -> None:
    if not engine.has_module("localcloud.secretmanager.server"):
        pytest.skip("the Secret Manager emulator is not there")
    done = engine.wait_until(engine.execute(engine.deploy(SECRETS), {"id": "api-key"}).name)
    assert done.state.name == "SUCCEEDED", done.error
    assert json.loads(done.result) == {
        "secret": "projects/local-project/secrets/api-key",
        "first": "first",
        "crc_is_text": True,  # int64 as a string, as the REST API writes it
        "second_name": "projects/local-project/secrets/api-key/versions/2",
        "latest": "second",
        "disabled": "DISABLED",
        "versions": 2,
    }


CHILD = """
main:
  params: [args]
  steps:
    - double:
        return: ${args.x * 2}
"""

PARENT = """
main:
  params: [args]
  steps:
    - start:
        call: googleapis.workflowexecutions.v1.projects.locations.workflows.executions.create
        args:
          parent: ${args.child}
          body:
            argument: '${json.encode_to_string({"x": 21})}'
        result: started
    - look:
        call: googleapis.workflowexecutions.v1.projects.locations.workflows.executions.get
        args:
          name: ${started.name}
        result: current
    - wait_or_finish:
        switch:
          - condition: ${current.state == "ACTIVE"}
            next: pause
        next: done
    - pause:
        call: sys.sleep
        args:
          seconds: 0.05
        next: look
    - done:
        return:
          started_state: ${started.state}
          state: ${current.state}
          result: ${json.decode(current.result)}
"""


def bind_the_engine_address(engine: Any) -> None:
    """The engine's own connectors were made before its port (0: any free one) was known."""
    engine.service.connectors.bind_address("workflows", engine.service.address)


def test_a_workflow_starts_another_through_the_executions_connector_and_reads_its_result(engine: Any) -> None:
    bind_the_engine_address(engine)
    child = engine.deploy(CHILD)
    done = engine.wait_until(engine.execute(engine.deploy(PARENT), {"child": child.name}).name)
    assert done.state.name == "SUCCEEDED", done.error
    assert json.loads(done.result) == {"started_state": "ACTIVE", "state": "SUCCEEDED", "result": 42}


FAILING_CHILD = """
main:
  steps:
    - fail:
        raise: "the child gave up"
"""

RUN_PARENT = """
main:
  params: [args]
  steps:
    - run_child:
        call: googleapis.workflowexecutions.v1.projects.locations.workflows.executions.run
        args:
          workflow_id: ${args.child}
          argument:
            x: 21
        result: doubled
    - run_without_waiting:
        call: googleapis.workflowexecutions.v1.projects.locations.workflows.executions.run
        args:
          workflow_id: ${args.child}
          argument:
            x: 1
          connector_params:
            skip_polling: true
        result: nothing
    - run_failing:
        try:
          call: googleapis.workflowexecutions.v1.projects.locations.workflows.executions.run
          args:
            workflow_id: ${args.failing}
          result: never
        except:
          as: e
          steps:
            - caught:
                assign:
                  - failure: ${e}
    - done:
        return:
          doubled: ${doubled}
          nothing: ${nothing}
          tags: ${failure.tags}
          failed_state: ${failure.execution.state}
"""


def test_run_starts_a_child_workflow_and_waits_for_its_result_or_raises_execution_error(engine: Any) -> None:
    bind_the_engine_address(engine)
    child = engine.deploy(CHILD).name.rsplit("/", 1)[1]
    failing = engine.deploy(FAILING_CHILD).name.rsplit("/", 1)[1]
    done = engine.wait_until(
        engine.execute(engine.deploy(RUN_PARENT), {"child": child, "failing": failing}).name
    )
    assert done.state.name == "SUCCEEDED", done.error
    assert json.loads(done.result) == {
        "doubled": 42,
        "nothing": None,
        "tags": ["ExecutionError"],
        "failed_state": "FAILED",
    }


WORKFLOWS = """
main:
  params: [args]
  steps:
    - create:
        call: googleapis.workflows.v1.projects.locations.workflows.create
        args:
          parent: ${args.parent}
          workflowId: ${args.id}
          body:
            sourceContents: "- r:\\n    return: 1\\n"
        result: created
    - read:
        call: googleapis.workflows.v1.projects.locations.workflows.get
        args:
          name: ${created.name}
        result: read
    - delete_without_polling:
        call: googleapis.workflows.v1.projects.locations.workflows.delete
        args:
          name: ${created.name}
          connector_params:
            skip_polling: true
        result: operation
    - done:
        return:
          name: ${created.name}
          state: ${read.state}
          operation_is_named: ${text.match_regex(operation.name, "/operations/")}
          operation_keys: ${keys(operation)}
"""


def test_a_long_running_operation_is_polled_to_its_resource_unless_polling_is_skipped(engine: Any) -> None:
    bind_the_engine_address(engine)
    argument = {"parent": engine.parent, "id": "made-by-a-connector"}
    done = engine.wait_until(engine.execute(engine.deploy(WORKFLOWS), argument).name)
    assert done.state.name == "SUCCEEDED", done.error
    result = json.loads(done.result)
    assert result["name"] == f"{engine.parent}/workflows/made-by-a-connector"
    assert result["state"] == "ACTIVE"
    assert result["operation_is_named"] is True
    assert "done" in result["operation_keys"] and "metadata" in result["operation_keys"]
    with pytest.raises(gexc.NotFound):
        engine.workflows.get_workflow(name=result["name"])


TASKS_V2BETA3 = """
main:
  params: [args]
  steps:
    - init:
        assign:
          - location: ${"projects/" + sys.get_env("GOOGLE_CLOUD_PROJECT_ID") + "/locations/us-central1"}
          - queue: ${location + "/queues/" + args.queue}
    - create_queue:
        call: googleapis.cloudtasks.v2beta3.projects.locations.queues.create
        args:
          parent: ${location}
          body:
            name: ${queue}
            httpTarget:
              uriOverride:
                host: example.com
            taskTtl: 864000s
        result: created_queue
    - pause:
        call: googleapis.cloudtasks.v2beta3.projects.locations.queues.pause
        args:
          name: ${queue}
    - create_task:
        call: googleapis.cloudtasks.v2beta3.projects.locations.queues.tasks.create
        args:
          parent: ${queue}
          body:
            task:
              httpRequest:
                url: http://127.0.0.1:9/never
        result: created_task
    - read_through_v2:
        call: googleapis.cloudtasks.v2.projects.locations.queues.get
        args:
          name: ${queue}
        result: through_v2
    - stats:
        call: googleapis.cloudtasks.v2beta3.projects.locations.queues.get
        args:
          name: ${queue}
          readMask: stats
        result: with_stats
    - delete_queue:
        call: googleapis.cloudtasks.v2beta3.projects.locations.queues.delete
        args:
          name: ${queue}
        result: deleted
    - done:
        return:
          host: ${created_queue.httpTarget.uriOverride.host}
          task_ttl: ${created_queue.taskTtl}
          task: ${text.match_regex(created_task.name, "/queues/" + args.queue + "/tasks/")}
          v2_state: ${through_v2.state}
          tasks: ${with_stats.stats.tasksCount}
          deleted: ${deleted}
"""


def test_a_workflow_uses_the_cloud_tasks_v2beta3_connectors_over_the_queues_v2_sees(engine: Any) -> None:
    if not engine.has_module("localcloud.tasks.server"):
        pytest.skip("the Cloud Tasks emulator is not there")
    done = engine.wait_until(engine.execute(engine.deploy(TASKS_V2BETA3), {"queue": "beta-queue"}).name)
    assert done.state.name == "SUCCEEDED", done.error
    assert json.loads(done.result) == {
        "host": "example.com",
        "task_ttl": "864000s",
        "task": True,
        "v2_state": "PAUSED",
        "tasks": "1",
        "deleted": {},
    }


SECRET_IN_AN_EXPRESSION = """
main:
  params: [args]
  steps:
    - create_secret:
        call: googleapis.secretmanager.v1.projects.secrets.create
        args:
          parent: ${"projects/" + sys.get_env("GOOGLE_CLOUD_PROJECT_ID")}
          secretId: ${args.id}
          body:
            replication:
              automatic: {}
    - add:
        call: googleapis.secretmanager.v1.projects.secrets.addVersionString
        args:
          secret_id: ${args.id}
          data: first
    - read:
        assign:
          - latest: ${googleapis.secretmanager.v1.projects.secrets.versions.accessString(args.id)}
          - first: ${googleapis.secretmanager.v1.projects.secrets.versions.accessString(args.id, "1", sys.get_env("GOOGLE_CLOUD_PROJECT_ID"))}
    - done:
        return: ${latest + " " + first}
"""


def test_access_string_is_called_in_an_expression_with_positional_arguments(engine: Any) -> None:
    if not engine.has_module("localcloud.secretmanager.server"):
        pytest.skip("the Secret Manager emulator is not there")
    done = engine.wait_until(engine.execute(engine.deploy(SECRET_IN_AN_EXPRESSION), {"id": "in-expr"}).name)
    assert done.state.name == "SUCCEEDED", done.error
    assert json.loads(done.result) == "first first"


def test_access_string_in_an_expression_takes_one_to_three_arguments(engine: Any) -> None:
    too_many = SECRET_IN_AN_EXPRESSION.replace(
        "accessString(args.id)}", 'accessString(args.id, "1", "p", "x")}'
    )
    with pytest.raises(gexc.InvalidArgument, match="takes 1 to 3 arguments, 4 given"):
        engine.deploy(too_many)
