from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.protobuf import duration_pb2, timestamp_pb2

from localcloud.clock import ManualClock
from tests.support.eventually import eventually_async

from .conftest import Local, call, stop_streaming

pytestmark = pytest.mark.filterwarnings("ignore:The return_immediately flag is deprecated")


async def _setup(local: Local, name: str, **subscription: Any) -> tuple[str, str]:
    topic, sub = local.topic(f"topic-{name}"), local.subscription(f"sub-{name}")
    await call(local.publisher.create_topic, name=topic)
    await call(local.subscriber.create_subscription, request={"name": sub, "topic": topic, **subscription})
    return topic, sub


async def _publish(local: Local, topic: str, data: bytes, **attributes: str) -> str:
    future = await call(local.publisher.publish, topic, data, **attributes)
    return str(await call(future.result, 10))


async def test_streaming_subscriber_receives_published_message_with_attributes(live: Local) -> None:
    topic, sub = await _setup(live, "stream")
    received: list[pubsub_v1.subscriber.message.Message] = []
    done = threading.Event()

    def callback(message: pubsub_v1.subscriber.message.Message) -> None:
        received.append(message)
        message.ack()
        done.set()

    future = live.subscriber.subscribe(sub, callback)
    try:
        message_id = await _publish(live, topic, b"hello", colour="blue")
        await eventually_async(done.is_set, what="delivery")
    finally:
        await stop_streaming(future)
    (message,) = received
    assert (message.data, dict(message.attributes), message.message_id) == (
        b"hello",
        {"colour": "blue"},
        message_id,
    )
    assert message.publish_time.timestamp() > 0
    assert message.delivery_attempt is None  # only set with a dead-letter policy


async def test_nack_redelivers_with_a_new_ack_id(live: Local) -> None:
    topic, sub = await _setup(live, "nack")
    await _publish(live, topic, b"again")
    first = await call(live.subscriber.pull, subscription=sub, max_messages=1)
    (delivery,) = first.received_messages
    await call(
        live.subscriber.modify_ack_deadline,
        subscription=sub,
        ack_ids=[delivery.ack_id],
        ack_deadline_seconds=0,
    )
    second = await call(live.subscriber.pull, subscription=sub, max_messages=1)
    (redelivery,) = second.received_messages
    assert redelivery.message.message_id == delivery.message.message_id
    assert redelivery.ack_id != delivery.ack_id
    # the stale ack id no longer acks anything; the new one does
    await call(live.subscriber.acknowledge, subscription=sub, ack_ids=[delivery.ack_id, "no-such-ack-id"])
    await call(
        live.subscriber.modify_ack_deadline,
        subscription=sub,
        ack_ids=[redelivery.ack_id],
        ack_deadline_seconds=0,
    )
    third = await call(live.subscriber.pull, subscription=sub, max_messages=1)
    await call(live.subscriber.acknowledge, subscription=sub, ack_ids=[third.received_messages[0].ack_id])
    empty = await call(live.subscriber.pull, subscription=sub, max_messages=1)
    assert list(empty.received_messages) == []


async def test_ack_deadline_expiry_redelivers(manual: Local, manual_clock: ManualClock) -> None:
    topic, sub = await _setup(manual, "expiry", ack_deadline_seconds=20)
    await _publish(manual, topic, b"slow")
    first = await call(manual.subscriber.pull, subscription=sub, max_messages=1)
    await manual_clock.advance(19)
    nothing = await call(manual.subscriber.pull, subscription=sub, max_messages=1, return_immediately=True)
    assert list(nothing.received_messages) == []
    await manual_clock.advance(2)
    second = await call(manual.subscriber.pull, subscription=sub, max_messages=1)
    assert second.received_messages[0].message.message_id == first.received_messages[0].message.message_id
    assert second.received_messages[0].ack_id != first.received_messages[0].ack_id


async def test_modify_ack_deadline_extends_the_lease(manual: Local, manual_clock: ManualClock) -> None:
    topic, sub = await _setup(manual, "extend")
    await _publish(manual, topic, b"long")
    first = await call(manual.subscriber.pull, subscription=sub, max_messages=1)
    ack_id = first.received_messages[0].ack_id
    await call(
        manual.subscriber.modify_ack_deadline, subscription=sub, ack_ids=[ack_id], ack_deadline_seconds=120
    )
    await manual_clock.advance(100)
    nothing = await call(manual.subscriber.pull, subscription=sub, max_messages=1, return_immediately=True)
    assert list(nothing.received_messages) == []


async def test_retry_policy_delays_redelivery_by_exponential_backoff(
    manual: Local, manual_clock: ManualClock
) -> None:
    policy = {
        "minimum_backoff": duration_pb2.Duration(seconds=10),
        "maximum_backoff": duration_pb2.Duration(seconds=15),
    }
    topic, sub = await _setup(manual, "backoff", retry_policy=policy)
    await _publish(manual, topic, b"retry")
    waits = []
    for _ in range(3):
        pulled = await call(manual.subscriber.pull, subscription=sub, max_messages=1)
        ack_id = pulled.received_messages[0].ack_id
        await call(
            manual.subscriber.modify_ack_deadline, subscription=sub, ack_ids=[ack_id], ack_deadline_seconds=0
        )
        waited = 0
        while True:
            again = await call(
                manual.subscriber.pull, subscription=sub, max_messages=1, return_immediately=True
            )
            if again.received_messages:
                await call(
                    manual.subscriber.modify_ack_deadline,
                    subscription=sub,
                    ack_ids=[again.received_messages[0].ack_id],
                    ack_deadline_seconds=0,
                )
                break
            await manual_clock.advance(1)
            waited += 1
            assert waited < 100
        waits.append(waited)
        await manual_clock.advance(30)
    assert waits[0] == 10  # min backoff after the first failure, then doubling capped at the max
    assert waits[1] == 15


async def test_dead_letter_after_max_attempts_with_delivery_attempt(live: Local) -> None:
    dead_topic, dead_sub = await _setup(live, "dead")
    topic, sub = await _setup(
        live, "source", dead_letter_policy={"dead_letter_topic": dead_topic, "max_delivery_attempts": 5}
    )
    message_id = await _publish(live, topic, b"poison", kind="bad")
    attempts = []
    for _ in range(5):
        pulled = await call(live.subscriber.pull, subscription=sub, max_messages=1)
        (delivery,) = pulled.received_messages
        attempts.append(delivery.delivery_attempt)
        await call(
            live.subscriber.modify_ack_deadline,
            subscription=sub,
            ack_ids=[delivery.ack_id],
            ack_deadline_seconds=0,
        )
    assert attempts == [1, 2, 3, 4, 5]
    assert list((await call(live.subscriber.pull, subscription=sub, max_messages=1)).received_messages) == []
    dead = (
        (await call(live.subscriber.pull, subscription=dead_sub, max_messages=1)).received_messages[0].message
    )
    assert dead.data == b"poison"
    assert dead.message_id != message_id
    assert dead.attributes["kind"] == "bad"
    assert dead.attributes["CloudPubSubDeadLetterSourceSubscription"] == "sub-source"
    assert dead.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"


async def test_filter_delivers_only_matching_messages(live: Local) -> None:
    expression = '(attributes.kind = "order" AND NOT attributes:test) OR hasPrefix(attributes.region, "eu-")'
    topic, sub = await _setup(live, "filter", filter=expression)
    await _publish(live, topic, b"1", kind="order")
    await _publish(live, topic, b"2", kind="order", test="yes")
    await _publish(live, topic, b"3", kind="refund")
    await _publish(live, topic, b"4", kind="refund", region="eu-west1")
    await _publish(live, topic, b"5", region="us-east1")
    pulled = await call(live.subscriber.pull, subscription=sub, max_messages=10)
    assert sorted(m.message.data for m in pulled.received_messages) == [b"1", b"4"]


async def test_not_equal_filter_matches_messages_without_the_attribute(live: Local) -> None:
    topic, sub = await _setup(live, "notequal", filter='attributes.kind != "noise"')
    await _publish(live, topic, b"a", kind="noise")
    await _publish(live, topic, b"b", kind="signal")
    await _publish(live, topic, b"c", other="x")
    pulled = await call(live.subscriber.pull, subscription=sub, max_messages=10)
    assert sorted(m.message.data for m in pulled.received_messages) == [b"b", b"c"]


async def test_ordered_subscription_redelivers_the_key_from_the_failed_message(live: Local) -> None:
    topic = live.topic("topic-ordered")
    sub = live.subscription("sub-ordered")
    await call(live.publisher.create_topic, name=topic)
    await call(
        live.subscriber.create_subscription,
        request={"name": sub, "topic": topic, "enable_message_ordering": True},
    )
    publisher = pubsub_v1.PublisherClient(
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
    )
    futures = [publisher.publish(topic, f"k{i}".encode(), ordering_key="key") for i in range(5)]
    for future in futures:
        await call(future.result, 10)
    first = await call(live.subscriber.pull, subscription=sub, max_messages=10)
    assert [m.message.data for m in first.received_messages] == [b"k0", b"k1", b"k2", b"k3", b"k4"]
    by_data = {m.message.data: m.ack_id for m in first.received_messages}
    await call(live.subscriber.acknowledge, subscription=sub, ack_ids=[by_data[b"k0"], by_data[b"k1"]])
    await call(
        live.subscriber.modify_ack_deadline,
        subscription=sub,
        ack_ids=[by_data[b"k2"]],
        ack_deadline_seconds=0,
    )
    again = await call(live.subscriber.pull, subscription=sub, max_messages=10)
    assert [m.message.data for m in again.received_messages] == [b"k2", b"k3", b"k4"]


async def test_seek_to_a_time_replays_retained_acked_messages(live: Local) -> None:
    topic, sub = await _setup(live, "seek", retain_acked_messages=True)
    for index in range(3):
        await _publish(live, topic, f"m{index}".encode())
    pulled = await call(live.subscriber.pull, subscription=sub, max_messages=10)
    await call(
        live.subscriber.acknowledge, subscription=sub, ack_ids=[m.ack_id for m in pulled.received_messages]
    )
    second_time = pulled.received_messages[1].message.publish_time
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(second_time)
    await call(live.subscriber.seek, request={"subscription": sub, "time": stamp})
    replayed = await call(live.subscriber.pull, subscription=sub, max_messages=10)
    assert sorted(m.message.data for m in replayed.received_messages) == [b"m1", b"m2"]


async def test_streaming_pull_ends_with_not_found_when_the_subscription_is_deleted(live: Local) -> None:
    _, sub = await _setup(live, "deleted")
    future = live.subscriber.subscribe(sub, lambda message: message.ack())
    await asyncio.sleep(0)
    await eventually_async(lambda: live.service.state.subscriptions[sub].consumers, what="stream attached")
    await call(live.subscriber.delete_subscription, subscription=sub)
    with pytest.raises(gexc.NotFound):
        await call(future.result, 10)


async def test_a_waiting_pull_returns_as_soon_as_a_message_arrives(
    live: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pull that found nothing waits for messages; the first one published ends the wait (it used to
    # wait for the subscription's deletion as well, so it returned only at the end of its wait).
    from localcloud.pubsub import api

    monkeypatch.setattr(api, "PULL_WAIT_SECONDS", 120.0)
    topic, sub = await _setup(live, "waiting")
    pull = asyncio.ensure_future(call(live.subscriber.pull, subscription=sub, max_messages=10, timeout=60))
    await eventually_async(lambda: live.service.state.subscriptions[sub].consumers, what="pull waiting")
    await _publish(live, topic, b"now")
    response = await asyncio.wait_for(pull, 30)
    assert [m.message.data for m in response.received_messages] == [b"now"]


async def test_streaming_pull_honours_max_outstanding_messages(live: Local) -> None:
    topic, sub = await _setup(live, "flow")
    for index in range(10):
        await _publish(live, topic, str(index).encode())
    held: list[pubsub_v1.subscriber.message.Message] = []
    lock = threading.Lock()
    flow = pubsub_v1.types.FlowControl(max_messages=3)

    def hold(message: pubsub_v1.subscriber.message.Message) -> None:
        with lock:
            held.append(message)

    future = live.subscriber.subscribe(sub, hold, flow_control=flow)
    try:
        await eventually_async(lambda: len(held) >= 3, what="three messages")
        state = live.service.state
        # the server hands out what a stream may take at once, so more than three leases would show now
        assert len(state.leases) == 3
        for message in list(held):
            message.ack()
        await eventually_async(lambda: len(held) >= 6, what="the next three")
    finally:
        await stop_streaming(future)


async def test_round_robin_spreads_messages_over_streams(live: Local) -> None:
    topic, sub = await _setup(live, "spread")
    seen: dict[int, int] = {0: 0, 1: 0}
    other = pubsub_v1.SubscriberClient()

    def counter(index: int) -> Any:
        def callback(message: pubsub_v1.subscriber.message.Message) -> None:
            seen[index] += 1
            message.ack()

        return callback

    futures = [live.subscriber.subscribe(sub, counter(0)), other.subscribe(sub, counter(1))]
    try:
        await eventually_async(
            lambda: len(live.service.state.subscriptions[sub].consumers) == 2, what="two streams"
        )
        for index in range(20):
            await _publish(live, topic, str(index).encode())
        await eventually_async(lambda: seen[0] + seen[1] == 20, what="all delivered")
        assert seen[0] > 0 and seen[1] > 0
    finally:
        for future in futures:
            await stop_streaming(future)
        other.close()


async def test_streaming_subscriber_sees_each_ordering_key_in_publish_order(live: Local) -> None:
    topic = live.topic("topic-ordered-stream")
    sub = live.subscription("sub-ordered-stream")
    await call(live.publisher.create_topic, name=topic)
    await call(
        live.subscriber.create_subscription,
        request={"name": sub, "topic": topic, "enable_message_ordering": True},
    )
    publisher = pubsub_v1.PublisherClient(
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
    )
    futures = [
        publisher.publish(topic, f"{key}:{index}".encode(), ordering_key=key)
        for index in range(30)
        for key in ("a", "b")
    ]
    for future in futures:
        await call(future.result, 10)
    seen: dict[str, list[int]] = {"a": [], "b": []}
    lock = threading.Lock()
    nacked: set[str] = set()

    def callback(message: pubsub_v1.subscriber.message.Message) -> None:
        key, index = message.data.decode().split(":")
        with lock:
            if message.data == b"a:10" and "a:10" not in nacked:
                nacked.add("a:10")  # one failure in the middle of key a
                message.nack()
                # hold the key until the server has seen the nack, so later acks of the key are stale
                deadline = time.monotonic() + 5
                while _leased(live, message.ack_id) and time.monotonic() < deadline:
                    time.sleep(0.005)
                return
            seen[key].append(int(index))
        message.ack()

    stream = live.subscriber.subscribe(sub, callback)
    try:
        await eventually_async(
            lambda: 10 in seen["a"] and seen["a"][-1] == 29 and len(seen["b"]) == 30, what="all"
        )
    finally:
        await stop_streaming(stream)
    assert seen["b"] == list(range(30))
    # after the nack the server restarts key a at the failed message and resends the rest in order
    # (the client may already have handed out a few later messages of the key before the nack landed)
    assert seen["a"][:10] == list(range(10))
    restart = len(seen["a"]) - 1 - seen["a"][::-1].index(10)
    assert seen["a"][restart:] == list(range(10, 30))


def _leased(local: Local, ack_id: str) -> bool:
    """Whether the delivery with ``ack_id`` is still the live one."""
    return ack_id in local.service.state.leases
