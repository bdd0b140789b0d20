"""Pub/Sub reads a project number in a name as the project's id; answers name the project by id, the form
Pub/Sub documents for its names."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.api_core import exceptions as gexc
from google.pubsub_v1.types import pubsub

from localcloud._project import project_number
from tests.unit.localcloud.pubsub.conftest import PROJECT, Local, call, requests_from

NUMBER = project_number(PROJECT)
Request = pubsub.StreamingPullRequest.pb()
Response = pubsub.StreamingPullResponse.pb()


async def test_topics_and_subscriptions_by_number_are_those_of_the_id(live: Local) -> None:
    await call(live.publisher.create_topic, name=live.topic("orders"))
    subscription = await call(
        live.subscriber.create_subscription,
        name=f"projects/{NUMBER}/subscriptions/orders-sub",
        topic=f"projects/{NUMBER}/topics/orders",
    )
    assert (subscription.name, subscription.topic) == (live.subscription("orders-sub"), live.topic("orders"))

    future = live.publisher.publish(f"projects/{NUMBER}/topics/orders", b"hello")
    await call(future.result, timeout=10)
    pulled = await call(
        live.subscriber.pull, subscription=f"projects/{NUMBER}/subscriptions/orders-sub", max_messages=1
    )
    assert [m.message.data for m in pulled.received_messages] == [b"hello"]

    listed = await call(live.publisher.list_topics, project=f"projects/{NUMBER}")
    assert [topic.name for topic in listed] == [live.topic("orders")]
    with pytest.raises(gexc.AlreadyExists):
        await call(live.publisher.create_topic, name=f"projects/{NUMBER}/topics/orders")


async def test_a_stream_opened_by_number_pulls_from_the_subscription_of_the_id(live: Local) -> None:
    topic, sub = live.topic("streamed"), live.subscription("streamed-sub")
    await call(live.publisher.create_topic, name=topic)
    await call(live.subscriber.create_subscription, name=sub, topic=topic)
    await call(live.publisher.publish(topic, b"streamed").result, 10)
    queue: asyncio.Queue[object] = asyncio.Queue()
    await queue.put(
        Request(subscription=f"projects/{NUMBER}/subscriptions/streamed-sub", stream_ack_deadline_seconds=10)
    )
    async with grpc.aio.insecure_channel(live.service.address) as channel:
        stream = channel.stream_stream(
            "/google.pubsub.v1.Subscriber/StreamingPull",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=Response.FromString,
        )(requests_from(queue))
        first = await stream.read()
        assert [m.message.data for m in first.received_messages] == [b"streamed"]
        stream.cancel()
