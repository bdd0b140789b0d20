"""Cloud Tasks v2beta3 on the REST surface, beside v2: the unmodified client with ``transport="rest"``, and
plain HTTP/JSON as Google documents it (``/v2beta3/...``)."""

from __future__ import annotations

import requests
from google.cloud import tasks_v2
from google.cloud import tasks_v2beta3 as beta

from tests.support.eventually import eventually
from tests.support.http import RecordingHttpServer
from tests.unit.localcloud.rest.conftest import RestCloud

LOCATION = "projects/rest-beta-project/locations/us-central1"


def test_a_queue_with_an_http_target_made_over_v2beta3_rest_is_read_over_v2_rest(
    rest_cloud: RestCloud,
) -> None:
    client = beta.CloudTasksClient(**RestCloud.client_kwargs(rest_cloud.tasks))
    name = f"{LOCATION}/queues/routed"
    created = client.create_queue(
        parent=LOCATION,
        queue=beta.Queue(
            name=name,
            http_target=beta.HttpTarget(
                uri_override=beta.UriOverride(
                    host="example.com",
                    path_override=beta.PathOverride(path="/inbox"),
                    uri_override_enforce_mode=beta.UriOverride.UriOverrideEnforceMode.ALWAYS,
                )
            ),
        ),
    )
    assert created.type_ == beta.Queue.Type.PUSH
    v2 = tasks_v2.CloudTasksClient(**RestCloud.client_kwargs(rest_cloud.tasks))
    assert v2.get_queue(name=name).http_target.uri_override.path_override.path == "/inbox"

    document = requests.get(f"http://{rest_cloud.tasks}/v2beta3/{name}", timeout=30).json()
    assert document["httpTarget"]["uriOverride"]["host"] == "example.com"
    assert (document["type"], document["taskTtl"], document["tombstoneTtl"]) == ("PUSH", "2678400s", "3600s")
    task = requests.post(
        f"http://{rest_cloud.tasks}/v2beta3/{name}/tasks",
        json={"task": {"httpRequest": {"body": "e30=", "headers": {"Content-Type": "application/json"}}}},
        timeout=30,
    )
    assert task.status_code == 200, task.text
    assert task.json()["name"].startswith(f"{name}/tasks/")
    with_stats = requests.get(
        f"http://{rest_cloud.tasks}/v2beta3/{name}", params={"readMask": "stats"}, timeout=30
    )
    assert set(with_stats.json()) == {"name", "stats"}


def test_a_bad_task_ttl_is_a_400_with_googles_error_body(rest_cloud: RestCloud) -> None:
    answer = requests.post(
        f"http://{rest_cloud.tasks}/v2beta3/{LOCATION}/queues",
        json={"name": f"{LOCATION}/queues/short-lived", "taskTtl": "60s"},
        timeout=30,
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "task_ttl" in answer.json()["error"]["message"]


def test_buffer_task_as_the_http_queues_sample_sends_it_reaches_the_queues_target(
    rest_cloud: RestCloud,
) -> None:
    client = beta.CloudTasksClient(**RestCloud.client_kwargs(rest_cloud.tasks))
    with RecordingHttpServer() as target:
        queue = client.create_queue(
            beta.CreateQueueRequest(
                parent=LOCATION,
                queue={
                    "name": f"{LOCATION}/queues/buffered",
                    "http_target": {
                        "uri_override": {
                            "scheme": beta.UriOverride.Scheme.HTTP,
                            "host": "127.0.0.1",
                            "port": f"{target.port}",
                            "path_override": {"path": "/work"},
                            "uri_override_enforce_mode": 2,
                        }
                    },
                },
            )
        )
        endpoint = f"http://{rest_cloud.tasks}/v2beta3/{queue.name}/tasks:buffer"
        answer = requests.post(
            endpoint,
            "something",
            headers={"Authorization": "Bearer t", "Content-Type": "text/plain"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["task"]["name"].startswith(f"{queue.name}/tasks/")
        eventually(lambda: len(target.requests) == 1, what="the buffered task's dispatch")
        sent = target.requests[0]
        assert (sent.method, sent.path, sent.body) == ("POST", "/work", b"something")
        assert sent.headers["Content-Type"] == "text/plain" and "Authorization" not in sent.headers

        named = f"http://{rest_cloud.tasks}/v2/{queue.name}/tasks/order-7:buffer"
        assert requests.post(named, b"{}", timeout=30).json()["task"]["name"] == f"{queue.name}/tasks/order-7"
        again = requests.post(named, b"{}", timeout=30)
        assert (again.status_code, again.json()["error"]["status"]) == (409, "ALREADY_EXISTS")


def test_buffer_task_needs_queue_level_routing(rest_cloud: RestCloud) -> None:
    name = f"{LOCATION}/queues/unrouted"
    beta.CloudTasksClient(**RestCloud.client_kwargs(rest_cloud.tasks)).create_queue(
        parent=LOCATION, queue=beta.Queue(name=name)
    )
    answer = requests.post(f"http://{rest_cloud.tasks}/v2beta3/{name}/tasks:buffer", b"x", timeout=30)
    assert answer.status_code == 400
    assert "queue-level routing" in answer.json()["error"]["message"]
    missing = requests.post(
        f"http://{rest_cloud.tasks}/v2beta3/{LOCATION}/queues/absent/tasks:buffer", timeout=30
    )
    assert missing.status_code == 404
