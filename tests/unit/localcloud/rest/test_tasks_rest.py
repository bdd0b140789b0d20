"""Cloud Tasks' REST surface: the unmodified client with ``transport="rest"``, and query parameters."""

from __future__ import annotations

import time

import pytest
import requests
from google.api_core import exceptions as gexc
from google.cloud import tasks_v2
from google.protobuf import timestamp_pb2

from tests.unit.localcloud.rest.conftest import RestCloud

LOCATION = "projects/rest-project/locations/us-central1"


def _client(rest_cloud: RestCloud) -> tasks_v2.CloudTasksClient:
    return tasks_v2.CloudTasksClient(**RestCloud.client_kwargs(rest_cloud.tasks))


def _task(body: bytes) -> tasks_v2.Task:
    """A task scheduled an hour ahead, so it stays in the queue while the test looks at it."""
    return tasks_v2.Task(
        http_request=tasks_v2.HttpRequest(
            url="http://127.0.0.1:9/never", http_method=tasks_v2.HttpMethod.POST, body=body
        ),
        schedule_time=timestamp_pb2.Timestamp(seconds=int(time.time()) + 3600),
    )


def test_queue_and_task_lifecycle_over_rest(rest_cloud: RestCloud) -> None:
    client = _client(rest_cloud)
    queue = client.create_queue(parent=LOCATION, queue=tasks_v2.Queue(name=f"{LOCATION}/queues/rest-queue"))
    assert queue.state == tasks_v2.Queue.State.RUNNING

    task = client.create_task(parent=queue.name, task=_task(b"payload"))
    assert task.name.startswith(f"{queue.name}/tasks/")
    assert task.view == tasks_v2.Task.View.BASIC and not task.http_request.body

    full = client.get_task(request={"name": task.name, "response_view": tasks_v2.Task.View.FULL})
    assert (full.view, full.http_request.body) == (tasks_v2.Task.View.FULL, b"payload")
    assert [t.name for t in client.list_tasks(parent=queue.name)] == [task.name]

    client.delete_task(name=task.name)
    with pytest.raises(gexc.NotFound):
        client.get_task(name=task.name)
    assert list(client.list_tasks(parent=queue.name)) == []


def test_a_missing_queue_is_a_404_with_googles_error_body(rest_cloud: RestCloud) -> None:
    with pytest.raises(gexc.NotFound):
        _client(rest_cloud).get_queue(name=f"{LOCATION}/queues/absent")
    answer = requests.get(f"http://{rest_cloud.tasks}/v2/{LOCATION}/queues/absent", timeout=30)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == 404
    assert answer.json()["error"]["status"] == "NOT_FOUND"


def test_list_with_page_size_and_an_enum_from_the_query_string(rest_cloud: RestCloud) -> None:
    client = _client(rest_cloud)
    queue = client.create_queue(parent=LOCATION, queue=tasks_v2.Queue(name=f"{LOCATION}/queues/paged-queue"))
    created = {client.create_task(parent=queue.name, task=_task(b"x")).name for _ in range(3)}
    url = f"http://{rest_cloud.tasks}/v2/{queue.name}/tasks"

    first = requests.get(url, params={"pageSize": "2", "responseView": "FULL"}, timeout=30).json()
    assert len(first["tasks"]) == 2 and first["nextPageToken"]
    assert {t["view"] for t in first["tasks"]} == {"FULL"}
    assert {t["httpRequest"]["body"] for t in first["tasks"]} == {"eA=="}  # bytes as base64
    rest = requests.get(
        url,
        params={"page_size": "2", "page_token": first["nextPageToken"], "responseView": "1"},
        timeout=30,
    ).json()
    assert {t["view"] for t in rest["tasks"]} == {"BASIC"} and "nextPageToken" not in rest
    assert {t["name"] for t in first["tasks"] + rest["tasks"]} == created

    numbers = requests.get(url, params={"$alt": "json;enum-encoding=int", "responseView": "2"}, timeout=30)
    assert {t["view"] for t in numbers.json()["tasks"]} == {2}
    compact = requests.get(url, params={"prettyPrint": "false", "pageSize": "1"}, timeout=30)
    assert "\n " not in compact.text


def test_a_nested_path_field_and_a_field_mask_in_the_query(rest_cloud: RestCloud) -> None:
    queue = _client(rest_cloud).create_queue(
        parent=LOCATION, queue=tasks_v2.Queue(name=f"{LOCATION}/queues/patched")
    )
    patched = requests.patch(
        f"http://{rest_cloud.tasks}/v2/{queue.name}",
        params={"updateMask": "rateLimits.maxDispatchesPerSecond"},
        json={"rateLimits": {"maxDispatchesPerSecond": 7}},
        timeout=30,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["rateLimits"]["maxDispatchesPerSecond"] == 7
    assert _client(rest_cloud).get_queue(name=queue.name).rate_limits.max_dispatches_per_second == 7


def test_query_values_that_do_not_fit_are_400_with_googles_wording(rest_cloud: RestCloud) -> None:
    url = f"http://{rest_cloud.tasks}/v2/{LOCATION}/queues"
    wrong_type = requests.get(url, params={"pageSize": "ten"}, timeout=30)
    assert wrong_type.status_code == 400
    assert wrong_type.json()["error"] == {
        "code": 400,
        "message": "Invalid value at 'pageSize' (TYPE_INT32), \"ten\"",
        "status": "INVALID_ARGUMENT",
    }
    unknown = requests.get(url, params={"colour": "red"}, timeout=30).json()["error"]
    assert unknown["status"] == "INVALID_ARGUMENT" and 'Unknown name "colour"' in unknown["message"]
    bad_enum = requests.get(f"{url}/x/tasks", params={"responseView": "HUGE"}, timeout=30)
    assert bad_enum.status_code == 400
    assert requests.get(url, params={"alt": "proto"}, timeout=30).status_code == 400
