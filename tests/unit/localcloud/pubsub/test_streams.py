from __future__ import annotations

import asyncio

import grpc
import pytest
from google.api_core import exceptions as gexc
from google.pubsub_v1.types import pubsub
from google.rpc import error_details_pb2

from localcloud.clock import ManualClock
from tests.support.eventually import eventually_async

from .conftest import Local, call, requests_from

pytestmark = pytest.mark.filterwarnings("ignore:The return_immediately flag is deprecated")

Request = pubsub.StreamingPullRequest.pb()
Response = pubsub.StreamingPullResponse.pb()


def _stream(channel: grpc.aio.Channel) -> grpc.aio.StreamStreamMultiCallable:
    return channel.stream_stream(
        "/google.pubsub.v1.Subscriber/StreamingPull",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=Response.FromString,
    )


async def _setup(local: Local, name: str) -> tuple[str, str]:
    topic, sub = local.topic(f"topic-{name}"), local.subscription(f"sub-{name}")
    await call(local.publisher.create_topic, name=topic)
    await call(local.subscriber.create_subscription, name=sub, topic=topic)
    return topic, sub


async def test_acks_sent_on_the_stream_are_honoured(live: Local) -> None:
    topic, sub = await _setup(live, "stream-ack")
    await call((await call(live.publisher.publish, topic, b"one")).result, 10)
    queue: asyncio.Queue[object] = asyncio.Queue()
    await queue.put(Request(subscription=sub, stream_ack_deadline_seconds=10))
    async with grpc.aio.insecure_channel(live.service.address) as channel:
        call_ = _stream(channel)(requests_from(queue))
        first = await call_.read()
        (delivery,) = first.received_messages
        await queue.put(Request())  # a heartbeat
        await queue.put(Request(ack_ids=[delivery.ack_id]))
        await eventually_async(lambda: not live.service.state.subscriptions[sub].entries, what="acked")
        call_.cancel()


async def test_stream_ends_with_unavailable_when_the_server_stops(live: Local) -> None:
    _, sub = await _setup(live, "stream-stop")
    queue: asyncio.Queue[object] = asyncio.Queue()
    await queue.put(Request(subscription=sub, stream_ack_deadline_seconds=10))
    async with grpc.aio.insecure_channel(live.service.address) as channel:
        call_ = _stream(channel)(requests_from(queue))
        await eventually_async(
            lambda: live.service.state.subscriptions[sub].consumers, what="stream attached"
        )
        await live.service.stop()
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call_.read()
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_stream_for_a_missing_subscription_is_not_found(live: Local) -> None:
    queue: asyncio.Queue[object] = asyncio.Queue()
    await queue.put(Request(subscription=live.subscription("nowhere"), stream_ack_deadline_seconds=10))
    async with grpc.aio.insecure_channel(live.service.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await _stream(channel)(requests_from(queue)).read()
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_messages_older_than_the_retention_are_not_delivered(
    manual: Local, manual_clock: ManualClock
) -> None:
    topic, sub = manual.topic("topic-retained"), manual.subscription("sub-retained")
    await call(manual.publisher.create_topic, name=topic)
    await call(
        manual.subscriber.create_subscription,
        request={"name": sub, "topic": topic, "message_retention_duration": {"seconds": 600}},
    )
    await call((await call(manual.publisher.publish, topic, b"old")).result, 10)
    await manual_clock.advance(601)
    await call((await call(manual.publisher.publish, topic, b"new")).result, 10)
    pulled = await call(manual.subscriber.pull, subscription=sub, max_messages=10, return_immediately=True)
    assert [m.message.data for m in pulled.received_messages] == [b"new"]


async def test_exactly_once_subscription_rejects_expired_ack_ids_with_error_info(
    manual: Local, manual_clock: ManualClock
) -> None:
    topic, sub = manual.topic("topic-eod"), manual.subscription("sub-eod")
    await call(manual.publisher.create_topic, name=topic)
    await call(
        manual.subscriber.create_subscription,
        request={"name": sub, "topic": topic, "enable_exactly_once_delivery": True},
    )
    await call((await call(manual.publisher.publish, topic, b"once")).result, 10)
    first = await call(manual.subscriber.pull, subscription=sub, max_messages=1)
    stale = first.received_messages[0].ack_id
    await manual_clock.advance(11)
    second = await call(manual.subscriber.pull, subscription=sub, max_messages=1)
    fresh = second.received_messages[0].ack_id
    with pytest.raises(gexc.InvalidArgument) as raised:
        await call(manual.subscriber.acknowledge, subscription=sub, ack_ids=[stale, fresh])
    (info,) = [d for d in raised.value.details if isinstance(d, error_details_pb2.ErrorInfo)]
    assert dict(info.metadata) == {stale: "PERMANENT_FAILURE_INVALID_ACK_ID"}
    assert not manual.service.state.subscriptions[sub].entries  # the valid ack id was honoured


async def test_deadlines_sent_on_the_stream_extend_or_nack_each_message_in_order(live: Local) -> None:
    topic, sub = await _setup(live, "stream-modack")
    for data in (b"one", b"two", b"three"):
        await call((await call(live.publisher.publish, topic, data)).result, 10)
    queue: asyncio.Queue[object] = asyncio.Queue()
    await queue.put(Request(subscription=sub, stream_ack_deadline_seconds=10))
    async with grpc.aio.insecure_channel(live.service.address) as channel:
        call_ = _stream(channel)(requests_from(queue))
        delivered: dict[bytes, str] = {}
        while len(delivered) < 3:
            response = await asyncio.wait_for(call_.read(), 10)
            delivered.update({m.message.data: m.ack_id for m in response.received_messages})
        await queue.put(
            Request(
                modify_deadline_ack_ids=[delivered[b"one"], delivered[b"two"], delivered[b"three"]],
                modify_deadline_seconds=[60, 60, 0],
            )
        )
        again = await asyncio.wait_for(call_.read(), 10)
        assert [m.message.data for m in again.received_messages] == [b"three"]
        assert again.received_messages[0].ack_id != delivered[b"three"]
        leases = live.service.state.leases
        assert all(
            leases[delivered[data]].deadline > live.service.state.clock.now() + 30
            for data in (b"one", b"two")
        )
        call_.cancel()
