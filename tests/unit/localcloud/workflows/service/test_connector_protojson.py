"""The connectors' REST JSON conversion gives what ``json_format`` gives, message for message and error
for error, whichever path (the fast one or ``json_format`` itself) a document takes."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from google.cloud.secretmanager_v1.types import service as secrets
from google.cloud.tasks_v2.types import cloudtasks, task
from google.protobuf import json_format
from google.pubsub_v1.types import pubsub

from localcloud.workflows.service import protojson

CREATE_TASK = cloudtasks.CreateTaskRequest.pb()
QUEUE = "projects/local-project/locations/us-central1/queues/saga-tasks"
BODY = base64.b64encode(b'{"saga_id": "trip-42", "note": "\xc3\xa9t\xc3\xa9"}').decode()


def http_task(**extra: Any) -> dict[str, Any]:
    return {
        "name": f"{QUEUE}/tasks/e-0-execute",
        "dispatchDeadline": "600s",
        "httpRequest": {
            "url": "http://127.0.0.1:9/step",
            "httpMethod": "POST",
            "headers": {"Content-Type": "application/json", "X-Trace": "é"},
            "oidcToken": {"serviceAccountEmail": "invoker@p.iam.gserviceaccount.com", "audience": "a"},
            "body": BODY,
        },
        **extra,
    }


DOCUMENTS: list[tuple[type[Any], dict[str, Any]]] = [
    (CREATE_TASK, {"parent": QUEUE, "task": http_task()}),
    (CREATE_TASK, {"parent": QUEUE, "task": http_task(scheduleTime="2026-11-25T22:00:00.5Z")}),
    (CREATE_TASK, {"parent": QUEUE, "task": http_task(), "responseView": "FULL"}),
    (CREATE_TASK, {"parent": QUEUE, "task": {"httpRequest": {"url": "u", "body": "YWJj"}}}),  # no padding
    (CREATE_TASK, {"parent": QUEUE, "task": {"httpRequest": {"url": "u", "body": "-_8"}}}),  # url-safe
    (CREATE_TASK, {"parent": QUEUE, "task": {"httpRequest": {"body": "***"}}}),  # not strict, like it
    (CREATE_TASK, {"parent": QUEUE, "task": {}}),
    (CREATE_TASK, {"parent": QUEUE, "task": {"dispatchCount": 3, "httpRequest": {}}}),
    (CREATE_TASK, {"parent": QUEUE, "task": {"http_request": {"url": "u"}}}),  # proto field name
    (CREATE_TASK, {"parent": QUEUE, "task": {"httpRequest": {"httpMethod": 1}}}),  # enum by number
    (CREATE_TASK, {"parent": QUEUE, "task": {"httpRequest": {"url": None}}}),
    (CREATE_TASK, {"parent": QUEUE, "task": http_task(scheduleTime=None)}),
    (pubsub.PublishRequest.pb(), {"topic": "t", "messages": [{"data": "YWJj", "attributes": {"k": "v"}}]}),
    (secrets.AccessSecretVersionRequest.pb(), {"name": "projects/p/secrets/s/versions/latest"}),
]

BAD_DOCUMENTS: list[tuple[type[Any], dict[str, Any]]] = [
    (CREATE_TASK, {"parent": QUEUE, "task": {"colour": "red"}}),
    (CREATE_TASK, {"parent": QUEUE, "task": {"httpRequest": {"httpMethod": "FETCH"}}}),
    (CREATE_TASK, {"parent": QUEUE, "task": {"dispatchDeadline": "ten minutes"}}),
    (CREATE_TASK, {"parent": QUEUE, "task": {"scheduleTime": "yesterday"}}),
    (CREATE_TASK, {"parent": QUEUE, "task": {"httpRequest": {"url": 7}}}),
    (CREATE_TASK, {"parent": QUEUE, "task": {"httpRequest": {"headers": {"n": 1}}}}),
    (CREATE_TASK, {"parent": QUEUE, "task": {"dispatchCount": "three"}}),
    (CREATE_TASK, {"parent": QUEUE, "task": "not a map"}),
    (CREATE_TASK, {"parent": QUEUE, "task": {"httpRequest": {"url": "\ud800"}}}),
    (CREATE_TASK, {"parent": QUEUE, "task": {"httpRequest": {}, "appEngineHttpRequest": {}}}),
]


def reference(message_type: type[Any], document: dict[str, Any]) -> Any:
    message = message_type()
    json_format.ParseDict(document, message)
    return message


@pytest.mark.parametrize(("message_type", "document"), DOCUMENTS)
def test_parse_builds_the_message_json_format_builds(
    message_type: type[Any], document: dict[str, Any]
) -> None:
    parsed = protojson.parse(document, message_type)
    expected = reference(message_type, document)
    assert parsed == expected
    assert parsed.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)


@pytest.mark.parametrize(("message_type", "document"), BAD_DOCUMENTS)
def test_parse_refuses_what_json_format_refuses_with_its_message(
    message_type: type[Any], document: dict[str, Any]
) -> None:
    with pytest.raises(json_format.ParseError) as expected:
        reference(message_type, document)
    with pytest.raises(json_format.ParseError) as raised:
        protojson.parse(document, message_type)
    assert str(raised.value) == str(expected.value)


def created_task() -> Any:
    message = task.Task.pb()()
    message.CopyFrom(reference(CREATE_TASK, {"parent": QUEUE, "task": http_task()}).task)
    message.create_time.FromJsonString("2026-11-25T22:00:00.123456Z")
    message.schedule_time.FromJsonString("2026-11-25T22:00:00Z")
    message.view = task.Task.View.BASIC
    return message


def full_task() -> Any:
    message = created_task()
    message.dispatch_count = 2
    message.first_attempt.schedule_time.FromJsonString("2026-11-25T22:00:01Z")
    message.first_attempt.response_status.code = 14
    message.first_attempt.response_status.message = "unavailable"
    return message


@pytest.mark.parametrize(
    "message",
    [
        created_task(),
        full_task(),
        task.Task.pb()(),
        pubsub.PublishResponse.pb()(message_ids=["1", "2"]),
        pubsub.PubsubMessage.pb()(data=b"\x00\xff", attributes={"a": "b"}),
    ],
)
def test_to_json_prints_what_json_format_prints(message: Any) -> None:
    printed = protojson.to_json(message)
    expected = json_format.MessageToDict(message)
    assert printed == expected
    assert list(printed) == list(expected)
