"""Query string values arrive as text; ``query_from_text`` gives each the JSON type of its field, and the
REST surface answers the gRPC status with the HTTP code Google's REST APIs use."""

from __future__ import annotations

import grpc
import pytest
from google.api_core import exceptions as gexc
from google.cloud.tasks_v2.types import cloudtasks
from google.iam.v1 import iam_policy_pb2
from google.pubsub_v1.types import pubsub

from localcloud import transcoding as tc
from localcloud.config import LocalCloudConfig
from localcloud.rest_server import HTTP_CODES


def test_booleans_integers_enums_and_floats_get_their_field_types() -> None:
    pull = tc.query_from_text(pubsub.PullRequest.pb(), [("returnImmediately", "true"), ("max_messages", "5")])
    assert pull == {"returnImmediately": True, "maxMessages": 5}
    assert tc.query_from_text(pubsub.PullRequest.pb(), [("returnImmediately", "False")]) == {
        "returnImmediately": False
    }
    by_name = tc.query_from_text(cloudtasks.ListTasksRequest.pb(), [("responseView", "FULL")])
    by_number = tc.query_from_text(cloudtasks.ListTasksRequest.pb(), [("response_view", "2")])
    assert (by_name, by_number) == ({"responseView": "FULL"}, {"responseView": 2})
    rate = tc.query_from_text(
        cloudtasks.UpdateQueueRequest.pb(), [("queue.rate_limits.max_dispatches_per_second", "2.5")]
    )
    assert rate == {"queue.rateLimits.maxDispatchesPerSecond": 2.5}


def test_repeated_fields_gather_their_values_and_nested_fields_are_dotted() -> None:
    ack = tc.query_from_text(pubsub.AcknowledgeRequest.pb(), [("ackIds", "a"), ("ack_ids", "b")])
    assert ack == {"ackIds": ["a", "b"]}
    policy = tc.query_from_text(
        iam_policy_pb2.GetIamPolicyRequest, [("options.requestedPolicyVersion", "3"), ("resource", "r")]
    )
    assert policy == {"options.requestedPolicyVersion": 3, "resource": "r"}
    update = tc.query_from_text(
        pubsub.UpdateTopicRequest.pb(),
        [("updateMask", "labels,kmsKeyName"), ("topic.messageRetentionDuration", "600s")],
    )
    assert update == {"updateMask": "labels,kmsKeyName", "topic.messageRetentionDuration": "600s"}


def test_converted_values_build_the_request_message() -> None:
    (method,) = (
        m
        for m in tc.methods_from_gapic(
            "google.cloud.tasks_v2.services.cloud_tasks.transports", ["google.cloud.tasks.v2.CloudTasks"]
        )
        if m.name == "ListTasks"
    )
    query = tc.query_from_text(method.request_type, [("pageSize", "7"), ("responseView", "FULL")])
    request = tc.request_from_rest(
        method, method.rules[0], {"parent": "projects/p/locations/l/queues/q"}, query, None
    )
    assert (request.page_size, request.response_view, request.parent) == (
        7,
        2,
        "projects/p/locations/l/queues/q",
    )


@pytest.mark.parametrize(
    ("message_type", "pairs", "expected"),
    [
        (
            pubsub.PullRequest.pb(),
            [("maxMessages", "5.5")],
            "Invalid value at 'maxMessages' (TYPE_INT32), \"5.5\"",
        ),
        (pubsub.PullRequest.pb(), [("returnImmediately", "yes")], "(TYPE_BOOL)"),
        (pubsub.PullRequest.pb(), [("maxMessages", "1"), ("max_messages", "2")], "takes one value"),
        (pubsub.PullRequest.pb(), [("colour", "red")], 'Unknown name "colour"'),
        (pubsub.UpdateTopicRequest.pb(), [("topic", "x")], "is a message type"),
        (pubsub.UpdateTopicRequest.pb(), [("topic.labels", "x")], "is a message type"),
        (pubsub.UpdateTopicRequest.pb(), [("topic.name.x", "y")], "has no fields"),
    ],
)
def test_values_that_cannot_bind_are_refused(
    message_type: type, pairs: list[tuple[str, str]], expected: str
) -> None:
    with pytest.raises(tc.TranscodingError, match=None) as refused:
        tc.query_from_text(message_type, pairs)
    assert expected in str(refused.value)


def test_http_codes_are_the_ones_google_maps_each_grpc_status_to() -> None:
    """The table of https://cloud.google.com/apis/design/errors#handling_errors, which google-api-core's
    exceptions follow too (they leave UNKNOWN and DATA_LOSS without a code: the table says 500)."""
    assert set(HTTP_CODES) == set(grpc.StatusCode)
    assert HTTP_CODES[grpc.StatusCode.UNKNOWN] == HTTP_CODES[grpc.StatusCode.DATA_LOSS] == 500
    for status, code in HTTP_CODES.items():
        if status not in (grpc.StatusCode.OK, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS):
            assert gexc.from_grpc_status(status, "").code == code, status


def test_rest_ports_are_the_defaults_beside_defaults_free_beside_free_ones_else_unserved() -> None:
    defaults = LocalCloudConfig.from_env({})
    assert [defaults.rest_address(s) for s in ("pubsub", "tasks", "secretmanager")] == [
        "127.0.0.1:8095",
        "127.0.0.1:8124",
        "127.0.0.1:8096",
    ]
    moved = LocalCloudConfig.from_env(
        {"PUBSUB_EMULATOR_HOST": "0.0.0.0:0", "CLOUD_TASKS_EMULATOR_HOST": "h:8123"}
    )
    assert (moved.rest_address("pubsub"), moved.rest_address("tasks")) == ("0.0.0.0:0", "h:8124")
    chosen = LocalCloudConfig.from_env({"PUBSUB_EMULATOR_HOST": "127.0.0.1:45169"})
    assert chosen.rest_address("pubsub") == ""  # the caller's ports are all reserved: no surface takes one
    given = LocalCloudConfig.from_env({"SECRET_MANAGER_REST_HOST": "127.0.0.1:7000"})
    assert given.rest_address("secretmanager") == "127.0.0.1:7000"
