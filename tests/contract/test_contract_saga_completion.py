from __future__ import annotations

import json
from pathlib import Path

import pytest
from saga_orchestrator.events import decode_result

from tests.contract.conftest import RESULTS

DATA = Path(__file__).parents[1] / "data"


@pytest.fixture
def saga_completion(make_client, local_cloud):
    local_cloud.create_topic(RESULTS)
    return make_client("saga_completion", "http")


def completion_body() -> dict:
    return json.loads((DATA / "completion-compensated.json").read_text())


def test_a_result_is_published_as_a_binary_cloudevent(saga_completion, local_cloud):
    response = saga_completion.post("/", json=completion_body(), headers={"Authorization": "Bearer oidc"})
    assert response.status_code == 200
    [message] = local_cloud.published(RESULTS)
    assert response.get_json() == {
        "message_id": message.message_id,
        "event_id": message.attributes["ce-id"],
        "result": json.loads(message.data),
    }
    assert message.attributes["ce-type"] == "dev.sagaorchestrator.saga.v1.compensated"
    assert message.attributes["ce-subject"] == "trip-42"
    assert message.attributes["content-type"] == "application/json"
    event = decode_result(message.data, message.attributes)
    assert event.result.failed_step == "process_payment"
    v2_defaults: dict[str, object] = {"cause": None, "error": None, "uncompensated_steps": [], "audit": []}
    assert json.loads(message.data) == {**completion_body(), **v2_defaults}


def test_a_repeated_completion_publishes_the_same_event_id(saga_completion, local_cloud):
    saga_completion.post("/", json=completion_body())
    saga_completion.post("/", json=completion_body())
    first, second = local_cloud.published(RESULTS)
    assert first.attributes["ce-id"] == second.attributes["ce-id"]


def test_a_body_that_is_not_json_is_a_400(saga_completion, local_cloud):
    response = saga_completion.post("/", data=b"{oops", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert local_cloud.published(RESULTS) == []


def test_an_invalid_result_is_a_400_naming_every_field(saga_completion, local_cloud):
    body = completion_body()
    body["status"] = "done"
    del body["execution"]
    response = saga_completion.post("/", json=body)
    assert response.status_code == 400
    assert response.get_json()["errors"] == [
        {"field": "status", "message": "must be one of succeeded, compensated, failed, rejected"},
        {"field": "execution", "message": "is required: projects/P/locations/L/workflows/W/executions/E"},
    ]
    assert local_cloud.published(RESULTS) == []


def test_a_publish_failure_is_a_500_so_the_workflow_retries(make_client):
    saga_completion = make_client("saga_completion", "http")  # the result topic does not exist
    assert saga_completion.post("/", json=completion_body()).status_code == 500


def test_outputs_sent_beside_the_steps_are_published_in_their_records(saga_completion, local_cloud):
    # The workflow keeps each succeeded output once, in ``outputs``; the published result is unchanged.
    body = completion_body()
    outputs = {}
    for step in body["steps"]:
        if step["execute"] is not None and step["execute"]["status"] == "succeeded":
            outputs[step["name"]] = step["execute"].pop("output")
    assert outputs, "the fixture has succeeded steps"
    response = saga_completion.post("/", json={**body, "outputs": outputs})
    assert response.status_code == 200
    [message] = local_cloud.published(RESULTS)
    v2_defaults: dict[str, object] = {"cause": None, "error": None, "uncompensated_steps": [], "audit": []}
    assert json.loads(message.data) == {**completion_body(), **v2_defaults}
