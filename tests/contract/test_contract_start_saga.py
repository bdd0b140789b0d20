from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from saga_orchestrator.events import decode_result
from saga_orchestrator.model import derive_saga_id

from tests.contract.conftest import RESULTS

DATA = Path(__file__).parents[1] / "data"


def load_fixture(name: str) -> Any:
    return json.loads((DATA / name).read_text())


@pytest.fixture
def start_saga(make_client, local_cloud, workflow_path):
    local_cloud.create_topic(RESULTS)
    local_cloud.deploy_workflow(workflow_path)
    return make_client("start_saga", "cloudevent")


@pytest.fixture
def executions(local_cloud, workflow_path):
    """The executions of the saga workflow, oldest first."""
    return lambda: local_cloud.executions(workflow_path)


def post_binary(client, body, headers=None):
    fixture = load_fixture("eventarc-message-published-binary.json")
    return client.post("/", headers={**fixture["headers"], **(headers or {})}, data=json.dumps(body))


def binary_event_with_data(data: bytes | str, message_id: str = "555") -> dict:
    body = load_fixture("eventarc-message-published-binary.json")["body"]
    raw = data if isinstance(data, str) else base64.b64encode(data).decode()
    body["message"].update(data=raw, messageId=message_id, message_id=message_id)
    return body


def test_a_binary_mode_event_starts_one_labelled_execution(start_saga, local_cloud, executions):
    fixture = load_fixture("eventarc-message-published-binary.json")
    response = start_saga.post("/", headers=fixture["headers"], data=json.dumps(fixture["body"]))
    assert response.status_code == 200
    [execution] = executions()
    assert execution.name.startswith(
        "projects/local-project/locations/us-central1/workflows/saga-orchestrator/"
    )
    assert dict(execution.labels) == {"saga_id": "trip-42"}
    argument = json.loads(execution.argument)
    assert argument["saga_id"] == "trip-42"
    assert argument["event_id"] == "2070443601311540"
    assert argument["requested_at"] == "2026-11-25T22:00:00.123Z"
    assert [s["name"] for s in argument["steps"]] == ["create_booking", "process_payment"]
    assert local_cloud.published(RESULTS) == []


def test_a_redelivered_event_starts_nothing_new(start_saga, executions):
    fixture = load_fixture("eventarc-message-published-binary.json")
    for _ in range(3):
        assert (
            start_saga.post("/", headers=fixture["headers"], data=json.dumps(fixture["body"])).status_code
            == 200
        )
    assert len(executions()) == 1


def test_a_structured_mode_event_starts_the_saga(start_saga, executions):
    fixture = load_fixture("eventarc-message-published-structured.json")
    response = start_saga.post("/", headers=fixture["headers"], data=json.dumps(fixture["body"]))
    assert response.status_code == 200
    [execution] = executions()
    argument = json.loads(execution.argument)
    assert argument["saga_id"] == "order-1001"
    assert argument["steps"][1]["execute"]["secret_headers"] == {
        "X-Api-Key": {"secret": "payment-api-key", "version": "latest"}
    }


def test_a_request_without_saga_id_gets_one_derived_from_the_message_id(start_saga, executions):
    body = binary_event_with_data(
        json.dumps({"steps": [{"name": "a", "execute_url": "http://localhost:1/x"}]}).encode()
    )
    post_binary(start_saga, body)
    post_binary(start_saga, body)
    [execution] = executions()
    assert execution.labels["saga_id"] == derive_saga_id("555")


def rejected(local_cloud):
    [message] = local_cloud.published(RESULTS)
    event = decode_result(message.data, message.attributes)
    assert event.type == "dev.sagaorchestrator.saga.v1.rejected"
    return event


def test_data_that_is_not_json_is_acknowledged_and_rejected(start_saga, local_cloud, executions):
    response = post_binary(start_saga, binary_event_with_data(b"{not json"))
    assert response.status_code == 200
    event = rejected(local_cloud)
    assert [e.to_dict() for e in event.result.errors] == [
        {
            "field": "",
            "message": "the message data is not JSON: Expecting property name enclosed in double quotes at line 1 column 2",
        }
    ]
    assert event.subject == derive_saga_id("555")
    assert executions() == []


def test_data_that_is_not_base64_is_acknowledged_and_rejected(start_saga, local_cloud):
    response = post_binary(start_saga, binary_event_with_data("%%%not-base64%%%"))
    assert response.status_code == 200
    assert [e.message for e in rejected(local_cloud).result.errors] == [
        "the message data is not valid base64"
    ]


def test_an_invalid_request_is_rejected_naming_every_problem(start_saga, local_cloud, executions):
    request = {
        "saga_id": "bad-1",
        "metadata": {"order": 9},
        "steps": [
            {"name": "a", "execute_url": "http://metadata.google.internal/computeMetadata/v1/"},
            {"name": "a", "execute": {"url": "https://evil.test/x", "retry": {"max_attempts": 99}}},
        ],
    }
    response = post_binary(start_saga, binary_event_with_data(json.dumps(request).encode(), "777"))
    assert response.status_code == 200
    event = rejected(local_cloud)
    assert event.subject == "bad-1"
    assert event.result.metadata == {"order": 9}
    assert event.result.event_id == "777"
    assert [(e.field, e.message) for e in event.result.errors] == [
        (
            "steps[0].execute_url",
            "host 'metadata.google.internal' is the metadata server or link-local and is never called",
        ),
        ("steps[1].name", "duplicates the name of steps[0]"),
        ("steps[1].execute.url", "host 'evil.test' is not on the allowlist (SAGA_ALLOWED_HOSTS)"),
        ("steps[1].execute.retry.max_attempts", "must be an integer from 1 to 20"),
    ]
    assert executions() == []


def test_a_start_that_workflows_refuses_fails_the_event_so_it_is_redelivered(
    make_client, local_cloud, workflow_path
):
    local_cloud.create_topic(RESULTS)
    start_saga = make_client("start_saga", "cloudevent")  # the saga workflow is not deployed yet
    fixture = load_fixture("eventarc-message-published-binary.json")
    response = start_saga.post("/", headers=fixture["headers"], data=json.dumps(fixture["body"]))
    assert response.status_code == 500
    assert response.headers.get("X-Google-Status") == "crash"
    assert local_cloud.published(RESULTS) == []
    # The redelivery, once the workflow is there, succeeds.
    local_cloud.deploy_workflow(workflow_path)
    assert (
        start_saga.post("/", headers=fixture["headers"], data=json.dumps(fixture["body"])).status_code == 200
    )
    assert len(local_cloud.executions(workflow_path)) == 1


def test_a_rejection_that_cannot_be_published_fails_the_event(make_client):
    start_saga = make_client("start_saga", "cloudevent")  # the result topic does not exist
    response = post_binary(start_saga, binary_event_with_data(b"[]"))
    assert response.status_code == 500


@pytest.mark.parametrize(
    ("data", "subject", "field", "message"),
    [
        (
            b'{"saga_id": "deep-1", "steps": [{"name": "a", "execute_url": "http://localhost:1/x", '
            b'"execute_payload": ' + b"[" * 1000 + b"]" * 1000 + b"}]}",
            derive_saga_id("888"),  # the data did not decode: its saga id cannot be read
            "steps[0].execute_payload" + "[0]" * 61,
            "nests arrays and objects more than 64 levels deep",
        ),
        (
            b'{"saga_id": "lone-1", "steps": [{"name": "a", "execute_url": "http://localhost:1/x/\\ud800"}]}',
            "lone-1",
            "steps[0].execute_url",
            "is a string that is not Unicode text: a lone surrogate U+D800 at character 21",
        ),
    ],
    ids=["nested-1000-deep", "lone-surrogate"],
)
def test_data_no_request_can_hold_is_acknowledged_and_rejected_naming_the_field(
    start_saga, local_cloud, executions, data, subject, field, message
):
    response = post_binary(start_saga, binary_event_with_data(data, "888"))
    assert response.status_code == 200
    event = rejected(local_cloud)
    assert event.subject == subject
    assert [(e.field, e.message) for e in event.result.errors] == [(field, message)]
    assert executions() == []
