"""saga_completion with a notice body (a saga stuck or parked, waiting for an operator): the real
function, the real Pub/Sub client and the emulator, as in test_contract_saga_completion.py."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from tests.contract.conftest import RESULTS
from tests.support.notices import stuck_notice

SCHEMA = json.loads(
    (Path(__file__).parents[2] / "schemas" / "saga-notice.schema.json").read_text(encoding="utf-8")
)


@pytest.fixture
def saga_completion(make_client, local_cloud):
    local_cloud.create_topic(RESULTS)
    return make_client("saga_completion", "http")


def test_a_stuck_notice_is_published_as_a_binary_cloudevent(saga_completion, local_cloud):
    response = saga_completion.post("/", json=stuck_notice(), headers={"Authorization": "Bearer oidc"})
    assert response.status_code == 200
    [message] = local_cloud.published(RESULTS)
    assert response.get_json() == {"message_id": message.message_id, "event_id": message.attributes["ce-id"]}
    assert message.attributes["ce-specversion"] == "1.0"
    assert message.attributes["ce-type"] == "dev.sagaorchestrator.saga.v1.stuck"
    assert message.attributes["ce-subject"] == "trip-42"
    assert message.attributes["ce-time"] == "2026-12-06T10:00:00.000Z"
    assert message.attributes["ce-source"].startswith("//workflows.googleapis.com/projects/local-project/")
    assert message.attributes["content-type"] == "application/json"
    data = json.loads(message.data)
    assert data == stuck_notice()
    assert not list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(data))


def test_a_repeated_notice_keeps_its_event_id_and_the_next_one_gets_another(saga_completion, local_cloud):
    for body in (stuck_notice(), stuck_notice(at="2026-12-06T10:00:07.000Z"), stuck_notice(sequence=2)):
        assert saga_completion.post("/", json=body).status_code == 200
    first, again, second = local_cloud.published(RESULTS)
    assert first.attributes["ce-id"] == again.attributes["ce-id"] != second.attributes["ce-id"]


def test_a_parked_notice_gets_its_own_type(saga_completion, local_cloud):
    body = stuck_notice(
        notice="parked", step="charge_card", action="execute", verbs=["retry", "compensate", "cancel"]
    )
    assert saga_completion.post("/", json=body).status_code == 200
    [message] = local_cloud.published(RESULTS)
    assert message.attributes["ce-type"] == "dev.sagaorchestrator.saga.v1.parked"
    assert json.loads(message.data) == body


def test_a_bad_notice_is_a_400_naming_every_field_and_publishes_nothing(saga_completion, local_cloud):
    body = stuck_notice(notice="late", sequence=0, verbs="retry", error="boom")
    del body["step"]
    response = saga_completion.post("/", json=body)
    assert response.status_code == 400
    assert {e["field"] for e in response.get_json()["errors"]} == {
        "notice",
        "step",
        "verbs",
        "sequence",
        "error",
    }
    assert local_cloud.published(RESULTS) == []


def test_a_notice_publish_failure_is_a_500_so_the_workflow_retries(make_client):
    saga_completion = make_client("saga_completion", "http")  # the result topic does not exist
    assert saga_completion.post("/", json=stuck_notice()).status_code == 500
