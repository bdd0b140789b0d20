"""saga_sweeper through functions_framework.create_app, against the local Workflows engine and Pub/Sub."""

from __future__ import annotations

import json

import pytest
from google.cloud.workflows import executions_v1

from tests.contract.conftest import RESULTS


@pytest.fixture
def saga_sweeper(make_client, local_cloud, workflow_path):
    local_cloud.deploy_workflow(workflow_path)
    local_cloud.create_topic(RESULTS)
    return make_client("saga_sweeper", "http")


def test_a_sweep_publishes_a_failed_result_for_a_cancelled_saga_and_says_what_it_swept(
    saga_sweeper, local_cloud, workflow_path
):
    client = local_cloud.clients.executions()
    execution = client.create_execution(
        parent=workflow_path,
        execution=executions_v1.Execution(argument='{"saga_id": "trip-5"}', labels={"saga_id": "trip-5"}),
    )
    client.cancel_execution(name=execution.name)

    response = saga_sweeper.post("/")

    assert response.status_code == 200
    [message] = local_cloud.published(RESULTS)
    assert response.get_json() == {
        "swept": [
            {
                "saga_id": "trip-5",
                "execution": execution.name,
                "cause": "terminated",
                "event_id": message.attributes["ce-id"],
            }
        ]
    }
    assert json.loads(message.data)["cause"] == "terminated"


def test_a_sweep_with_nothing_to_do_publishes_nothing(saga_sweeper, local_cloud):
    response = saga_sweeper.post("/")
    assert (response.status_code, response.get_json()) == (200, {"swept": []})
    assert local_cloud.published(RESULTS) == []


def test_other_methods_are_refused(saga_sweeper):
    assert saga_sweeper.put("/").status_code == 405
