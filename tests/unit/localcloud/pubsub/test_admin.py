from __future__ import annotations

import pytest
from google import pubsub_v1 as pubsub_v1_gapic
from google.api_core import exceptions as gexc
from google.iam.v1 import policy_pb2
from google.protobuf import field_mask_pb2

from .conftest import Local, call


async def test_topic_and_subscription_lifecycle(live: Local) -> None:
    topic, sub = live.topic("orders"), live.subscription("orders-worker")
    await call(live.publisher.create_topic, name=topic)
    with pytest.raises(gexc.AlreadyExists):
        await call(live.publisher.create_topic, name=topic)
    created = await call(live.subscriber.create_subscription, name=sub, topic=topic)
    assert created.ack_deadline_seconds == 10
    assert created.message_retention_duration.total_seconds() == 7 * 24 * 3600
    listed = await call(live.publisher.list_topic_subscriptions, topic=topic)
    assert list(listed) == [sub]
    await call(live.publisher.delete_topic, topic=topic)
    orphan = await call(live.subscriber.get_subscription, subscription=sub)
    assert orphan.topic == "_deleted-topic_"
    await call(live.subscriber.delete_subscription, subscription=sub)
    with pytest.raises(gexc.NotFound):
        await call(live.subscriber.get_subscription, subscription=sub)


async def test_publish_rejects_bad_input_naming_the_field(live: Local) -> None:
    topic = live.topic("strict")
    await call(live.publisher.create_topic, name=topic)
    api = pubsub_v1_gapic.PublisherClient()
    with pytest.raises(gexc.InvalidArgument, match=r"messages\[0\]"):
        await call(api.publish, topic=topic, messages=[{}])
    with pytest.raises(gexc.InvalidArgument, match=r"messages\[0\]\.attributes"):
        await call(api.publish, topic=topic, messages=[{"attributes": {f"k{i}": "v" for i in range(101)}}])
    with pytest.raises(gexc.InvalidArgument, match=r"messages\[1\]\.attributes"):
        await call(api.publish, topic=topic, messages=[{"data": b"x"}, {"attributes": {"k": "v" * 1025}}])
    with pytest.raises(gexc.InvalidArgument, match=r"messages\[0\]\.ordering_key"):
        await call(api.publish, topic=topic, messages=[{"data": b"x", "ordering_key": "k" * 1025}])
    with pytest.raises(gexc.InvalidArgument, match="larger than"):
        await call(api.publish, topic=topic, messages=[{"data": b"x" * (10 * 1000 * 1000 + 1)}])
    with pytest.raises(gexc.NotFound):
        await call(api.publish, topic=live.topic("missing"), messages=[{"data": b"x"}])
    with pytest.raises(gexc.InvalidArgument, match="topic"):
        await call(api.publish, topic="projects/p/topics/9starts-with-digit", messages=[{"data": b"x"}])


async def test_subscription_settings_are_validated(live: Local) -> None:
    topic = live.topic("validated")
    await call(live.publisher.create_topic, name=topic)
    with pytest.raises(gexc.InvalidArgument, match="ack_deadline_seconds"):
        await call(
            live.subscriber.create_subscription,
            name=live.subscription("bad-ack"),
            topic=topic,
            ack_deadline_seconds=601,
        )
    with pytest.raises(gexc.InvalidArgument, match="filter"):
        await call(
            live.subscriber.create_subscription,
            request={
                "name": live.subscription("bad-filter"),
                "topic": topic,
                "filter": 'attributes.a = "x" AND',
            },
        )
    with pytest.raises(gexc.InvalidArgument, match="name"):
        await call(live.subscriber.create_subscription, name=live.subscription("goog-reserved"), topic=topic)
    with pytest.raises(gexc.NotFound):
        await call(
            live.subscriber.create_subscription, name=live.subscription("no-topic"), topic=live.topic("nope")
        )
    with pytest.raises(gexc.InvalidArgument, match="max_delivery_attempts"):
        await call(
            live.subscriber.create_subscription,
            request={
                "name": live.subscription("bad-dlq"),
                "topic": topic,
                "dead_letter_policy": {"dead_letter_topic": topic, "max_delivery_attempts": 101},
            },
        )


async def test_update_subscription_applies_only_the_masked_fields(live: Local) -> None:
    topic, sub = live.topic("updated"), live.subscription("updated-sub")
    await call(live.publisher.create_topic, name=topic)
    await call(live.subscriber.create_subscription, name=sub, topic=topic, ack_deadline_seconds=30)
    updated = await call(
        live.subscriber.update_subscription,
        request={
            "subscription": {"name": sub, "ack_deadline_seconds": 45, "labels": {"team": "saga"}},
            "update_mask": field_mask_pb2.FieldMask(paths=["labels"]),
        },
    )
    assert (updated.ack_deadline_seconds, dict(updated.labels)) == (30, {"team": "saga"})
    with pytest.raises(gexc.InvalidArgument, match="filter"):
        await call(
            live.subscriber.update_subscription,
            request={
                "subscription": {"name": sub, "filter": "hasPrefix(attributes.k)"},
                "update_mask": field_mask_pb2.FieldMask(paths=["filter"]),
            },
        )
    with pytest.raises(gexc.InvalidArgument, match="update_mask"):
        await call(
            live.subscriber.update_subscription,
            request={"subscription": {"name": sub}, "update_mask": field_mask_pb2.FieldMask(paths=["topic"])},
        )


async def test_iam_policy_round_trips(live: Local) -> None:
    topic = live.topic("guarded")
    await call(live.publisher.create_topic, name=topic)
    policy = await call(live.publisher.get_iam_policy, request={"resource": topic})
    policy.bindings.add(role="roles/pubsub.publisher", members=["serviceAccount:a@p.iam.gserviceaccount.com"])
    stored = await call(live.publisher.set_iam_policy, request={"resource": topic, "policy": policy})
    again = await call(live.publisher.get_iam_policy, request={"resource": topic})
    assert again == stored
    assert [b.role for b in again.bindings] == ["roles/pubsub.publisher"]
    allowed = await call(
        live.publisher.test_iam_permissions,
        request={"resource": topic, "permissions": ["pubsub.topics.publish"]},
    )
    assert list(allowed.permissions) == ["pubsub.topics.publish"]
    with pytest.raises(gexc.NotFound):
        await call(live.publisher.get_iam_policy, request={"resource": live.topic("absent")})
    assert isinstance(stored, policy_pb2.Policy)
