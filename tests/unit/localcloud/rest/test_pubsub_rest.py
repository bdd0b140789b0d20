"""Pub/Sub's REST surface: the unmodified clients with ``transport="rest"``, and plain HTTP/JSON."""

from __future__ import annotations

import base64

import pytest
import requests
from google import pubsub_v1 as pubsub_gapic
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1

from tests.unit.localcloud.rest.conftest import RestCloud

PROJECT = "projects/rest-project"


def test_publisher_and_subscriber_clients_work_over_rest(rest_cloud: RestCloud) -> None:
    publisher = pubsub_v1.PublisherClient(**RestCloud.client_kwargs(rest_cloud.pubsub))
    subscriber = pubsub_v1.SubscriberClient(**RestCloud.client_kwargs(rest_cloud.pubsub))
    topic = publisher.create_topic(request={"name": f"{PROJECT}/topics/orders", "labels": {"team": "sagas"}})
    assert (topic.name, dict(topic.labels)) == (f"{PROJECT}/topics/orders", {"team": "sagas"})
    subscription = subscriber.create_subscription(
        name=f"{PROJECT}/subscriptions/orders-sub", topic=topic.name, ack_deadline_seconds=30
    )
    assert (subscription.topic, subscription.ack_deadline_seconds) == (topic.name, 30)

    message_id = publisher.publish(topic.name, b"\x00order\xff", kind="created").result(timeout=30)

    pulled = subscriber.pull(subscription=subscription.name, max_messages=10, timeout=30)
    assert [m.message.message_id for m in pulled.received_messages] == [message_id]
    message = pulled.received_messages[0].message
    assert (message.data, dict(message.attributes)) == (b"\x00order\xff", {"kind": "created"})
    subscriber.acknowledge(subscription=subscription.name, ack_ids=[pulled.received_messages[0].ack_id])

    with pytest.warns(DeprecationWarning):  # the client discourages return_immediately; it still works
        again = subscriber.pull(
            request={"subscription": subscription.name, "max_messages": 10, "return_immediately": True}
        )
    assert list(again.received_messages) == []
    names = [t.name for t in publisher.list_topics(project=PROJECT)]
    assert topic.name in names


def test_a_missing_topic_is_a_404_with_googles_error_body(rest_cloud: RestCloud) -> None:
    publisher = pubsub_v1.PublisherClient(**RestCloud.client_kwargs(rest_cloud.pubsub))
    with pytest.raises(gexc.NotFound):
        publisher.get_topic(topic=f"{PROJECT}/topics/absent")

    answer = requests.get(f"http://{rest_cloud.pubsub}/v1/{PROJECT}/topics/absent", timeout=30)
    assert answer.status_code == 404
    assert answer.headers["Content-Type"].startswith("application/json")
    error = answer.json()["error"]
    assert (error["code"], error["status"]) == (404, "NOT_FOUND")
    assert "absent" in error["message"]


def test_plain_http_json_publish_and_pull_as_google_documents_them(rest_cloud: RestCloud) -> None:
    base = f"http://{rest_cloud.pubsub}/v1/{PROJECT}"
    assert requests.put(f"{base}/topics/http-topic", json={}, timeout=30).status_code == 200
    created = requests.put(
        f"{base}/subscriptions/http-sub", json={"topic": f"{PROJECT}/topics/http-topic"}, timeout=30
    )
    assert created.json()["ackDeadlineSeconds"] == 10  # ProtoJSON: lowerCamel names
    again = requests.put(f"{base}/topics/http-topic", json={}, timeout=30)
    assert (again.status_code, again.json()["error"]["status"]) == (409, "ALREADY_EXISTS")

    data = base64.b64encode(b"hello").decode()
    published = requests.post(
        f"{base}/topics/http-topic:publish", json={"messages": [{"data": data}]}, timeout=30
    ).json()
    pulled = requests.post(f"{base}/subscriptions/http-sub:pull", json={"maxMessages": 5}, timeout=30).json()[
        "receivedMessages"
    ]
    assert [m["message"]["messageId"] for m in pulled] == published["messageIds"]
    assert pulled[0]["message"]["data"] == data
    acked = requests.post(
        f"{base}/subscriptions/http-sub:acknowledge", json={"ackIds": [pulled[0]["ackId"]]}, timeout=30
    )
    assert (acked.status_code, acked.json()) == (200, {})


def test_a_body_that_does_not_fit_the_request_is_400_invalid_argument(rest_cloud: RestCloud) -> None:
    base = f"http://{rest_cloud.pubsub}/v1/{PROJECT}/topics"
    for body in (b"{not json", b'{"noSuchField": 1}', b"[1, 2]"):
        answer = requests.put(f"{base}/bad-body", data=body, timeout=30)
        assert answer.status_code == 400, body
        assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"
    unrouted = requests.get(f"http://{rest_cloud.pubsub}/v1/nowhere", timeout=30)
    assert (unrouted.status_code, unrouted.json()["error"]["status"]) == (404, "NOT_FOUND")


def test_exactly_once_and_ordering_keys_survive_the_rest_surface(rest_cloud: RestCloud) -> None:
    # What python-pubsub's ordering-key and exactly-once samples need of the server over REST (their hangs
    # there are the client's: see tests/samples/python_samples.HANGS).
    publisher = pubsub_v1.PublisherClient(**RestCloud.client_kwargs(rest_cloud.pubsub))
    subscriber = pubsub_v1.SubscriberClient(**RestCloud.client_kwargs(rest_cloud.pubsub))
    topic = publisher.create_topic(name=f"{PROJECT}/topics/ordered")
    created = subscriber.create_subscription(
        request={
            "name": f"{PROJECT}/subscriptions/ordered-eod",
            "topic": topic.name,
            "enable_exactly_once_delivery": True,
            "enable_message_ordering": True,
        }
    )
    got = subscriber.get_subscription(subscription=created.name)
    assert (got.enable_exactly_once_delivery, got.enable_message_ordering) == (True, True)

    # One Publish request, unbatched, through the GAPIC client under the one the samples use.
    gapic = pubsub_gapic.PublisherClient(**RestCloud.client_kwargs(rest_cloud.pubsub))
    message = pubsub_gapic.PubsubMessage(data=b"first", ordering_key="key1")
    answer = gapic.publish(topic=topic.name, messages=[message])
    pulled = subscriber.pull(subscription=created.name, max_messages=1, timeout=30)
    (received,) = pulled.received_messages
    assert (received.message.message_id, received.message.ordering_key) == (answer.message_ids[0], "key1")
    subscriber.acknowledge(subscription=created.name, ack_ids=[received.ack_id])
    with pytest.raises(gexc.BadRequest, match="unknown or expired"):  # exactly-once: a spent ack id fails
        subscriber.acknowledge(subscription=created.name, ack_ids=[received.ack_id])
