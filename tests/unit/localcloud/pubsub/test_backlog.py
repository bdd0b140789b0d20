"""Delivery from a large backlog: expiry, nack, backoff and ordering keys keep their behaviour while the
emulator only touches the messages it hands out, and streaming pull packs many messages per response."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from typing import Any

import grpc
import pytest
from google.cloud import pubsub_v1
from google.protobuf import duration_pb2
from google.pubsub_v1.types import pubsub

from localcloud.clock import ManualClock
from tests.support.eventually import eventually_async
from tests.support.http import RecordingHttpServer

from .conftest import Local, call, requests_from, stop_streaming

pytestmark = pytest.mark.filterwarnings("ignore:The return_immediately flag is deprecated")

Request = pubsub.StreamingPullRequest.pb()
Response = pubsub.StreamingPullResponse.pb()


async def _setup(local: Local, name: str, **subscription: Any) -> tuple[str, str]:
    topic, sub = local.topic(f"topic-{name}"), local.subscription(f"sub-{name}")
    await call(local.publisher.create_topic, name=topic)
    await call(local.subscriber.create_subscription, request={"name": sub, "topic": topic, **subscription})
    return topic, sub


async def _publish_many(
    publisher: pubsub_v1.PublisherClient, topic: str, count: int, size: int = 16, **kwargs: str
) -> list[str]:
    def run() -> list[str]:
        futures = [
            publisher.publish(topic, (b"%06d" % index).ljust(size, b"."), **kwargs) for index in range(count)
        ]
        return [str(future.result(30)) for future in futures]

    return await asyncio.to_thread(run)


async def _pull(local: Local, sub: str, count: int) -> list[Any]:
    pulled = await call(local.subscriber.pull, subscription=sub, max_messages=count, return_immediately=True)
    return list(pulled.received_messages)


def _data(messages: list[Any]) -> list[bytes]:
    return [bytes(m.message.data).rstrip(b".") for m in messages]


def _ids(messages: list[Any]) -> list[str]:
    return [str(m.message.message_id) for m in messages]


def _arrival(ids: list[str]) -> list[str]:
    """Message ids in the order the emulator received them: the client commits batches concurrently, so
    that order can differ from the order of ``publish`` calls."""
    return sorted(ids, key=int)


async def test_expired_leases_in_a_large_backlog_are_redelivered_first_with_new_ack_ids(
    manual: Local, manual_clock: ManualClock
) -> None:
    topic, sub = await _setup(manual, "expiry-backlog")
    order = _arrival(await _publish_many(manual.publisher, topic, 3000))
    first = await _pull(manual, sub, 10)
    assert _ids(first) == order[:10]
    second = await _pull(manual, sub, 10)
    await call(manual.subscriber.acknowledge, subscription=sub, ack_ids=[m.ack_id for m in second])
    await manual_clock.advance(9)
    assert _ids(await _pull(manual, sub, 5)) == order[20:25]
    await manual_clock.advance(2)  # the first ten expire; the five pulled at 9 s are still out
    again = await _pull(manual, sub, 12)
    assert _ids(again) == order[:10] + order[25:27]
    assert not {m.ack_id for m in again} & {m.ack_id for m in first}
    # a stale ack id acks nothing: the message stays out on its new lease
    await call(manual.subscriber.acknowledge, subscription=sub, ack_ids=[first[0].ack_id])
    assert len(manual.service.state.subscriptions[sub].unacked) == 3000 - 10


async def test_nacked_messages_go_out_again_before_newer_ones(live: Local) -> None:
    topic, sub = await _setup(live, "nack-order")
    order = _arrival(await _publish_many(live.publisher, topic, 6))
    out = await _pull(live, sub, 3)
    assert _ids(out) == order[:3]
    await call(
        live.subscriber.modify_ack_deadline, subscription=sub, ack_ids=[out[1].ack_id], ack_deadline_seconds=0
    )
    assert _ids(await _pull(live, sub, 10)) == [order[1], *order[3:]]


async def test_shortening_an_extended_deadline_expires_the_lease_at_the_new_deadline(
    manual: Local, manual_clock: ManualClock
) -> None:
    topic, sub = await _setup(manual, "shorten")
    await _publish_many(manual.publisher, topic, 1)
    (delivery,) = await _pull(manual, sub, 1)
    for seconds in (300, 30):
        await call(
            manual.subscriber.modify_ack_deadline,
            subscription=sub,
            ack_ids=[delivery.ack_id],
            ack_deadline_seconds=seconds,
        )
    await manual_clock.advance(29)
    assert await _pull(manual, sub, 1) == []
    await manual_clock.advance(2)
    (again,) = await _pull(manual, sub, 1)
    assert again.message.message_id == delivery.message.message_id


async def test_backoff_holds_back_only_the_nacked_message(manual: Local, manual_clock: ManualClock) -> None:
    policy = {"minimum_backoff": duration_pb2.Duration(seconds=10)}
    topic, sub = await _setup(manual, "backoff-one", retry_policy=policy)
    order = _arrival(await _publish_many(manual.publisher, topic, 500))
    (first,) = await _pull(manual, sub, 1)
    await call(
        manual.subscriber.modify_ack_deadline,
        subscription=sub,
        ack_ids=[first.ack_id],
        ack_deadline_seconds=0,
    )
    rest = await _pull(manual, sub, 1000)
    assert _ids(rest) == order[1:]
    await call(manual.subscriber.acknowledge, subscription=sub, ack_ids=[m.ack_id for m in rest])
    await manual_clock.advance(9)
    assert await _pull(manual, sub, 10) == []
    await manual_clock.advance(1)
    assert _ids(await _pull(manual, sub, 10)) == order[:1]


async def test_an_ordering_key_waits_out_the_backoff_of_its_failed_message_while_others_flow(
    manual: Local, manual_clock: ManualClock
) -> None:
    policy = {"minimum_backoff": duration_pb2.Duration(seconds=10)}
    topic, sub = await _setup(manual, "ordered-backoff", enable_message_ordering=True, retry_policy=policy)
    publisher = pubsub_v1.PublisherClient(
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
    )
    for key in ("a", "b"):
        await _publish_many(publisher, topic, 3, ordering_key=key)
    first = await _pull(manual, sub, 10)
    by_key = {(m.message.ordering_key, bytes(m.message.data).rstrip(b".")): m.ack_id for m in first}
    assert len(by_key) == 6
    await call(manual.subscriber.acknowledge, subscription=sub, ack_ids=[by_key["a", b"000000"]])
    await call(
        manual.subscriber.modify_ack_deadline,
        subscription=sub,
        ack_ids=[by_key["a", b"000001"]],
        ack_deadline_seconds=0,
    )
    # a:2 went back with a:1; key b still holds its leases, so nothing may go out yet
    assert await _pull(manual, sub, 10) == []
    await manual_clock.advance(9)
    assert await _pull(manual, sub, 10) == []
    await manual_clock.advance(1)
    again = await _pull(manual, sub, 10)
    assert [(m.message.ordering_key, d) for m, d in zip(again, _data(again), strict=True)] == [
        ("a", b"000001"),
        ("a", b"000002"),
    ]


async def test_ordered_push_sends_a_key_one_message_at_a_time_in_order(
    live: Local, endpoint: RecordingHttpServer
) -> None:
    endpoint.script_default(500, 200)  # the first push fails and is retried after the push backoff floor
    _, sub = await _setup(live, "ordered-push", enable_message_ordering=True)
    topic = live.topic("topic-ordered-push")
    publisher = pubsub_v1.PublisherClient(
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
    )
    await call(
        live.subscriber.modify_push_config, subscription=sub, push_config={"push_endpoint": endpoint.url()}
    )
    await _publish_many(publisher, topic, 4, ordering_key="k")
    await eventually_async(lambda: len(endpoint.requests) == 5, what="four messages, one retried")
    bodies = [json.loads(r.body)["message"]["data"] for r in endpoint.requests]
    data = [base64.b64decode(b).rstrip(b".") for b in bodies]
    assert data == [b"000000", b"000000", b"000001", b"000002", b"000003"]


async def test_detached_subscription_drops_its_backlog(live: Local) -> None:
    topic, sub = await _setup(live, "detach")
    await _publish_many(live.publisher, topic, 50)
    await _pull(live, sub, 5)
    await call(live.publisher.detach_subscription, request={"subscription": sub})
    state = live.service.state
    assert not state.subscriptions[sub].unacked
    assert not [lease for lease in state.leases.values() if lease.owner is state.subscriptions[sub]]
    await _publish_many(live.publisher, topic, 1)
    assert await _pull(live, sub, 10) == []


async def test_streaming_subscriber_drains_a_large_backlog_exactly_once(live: Local) -> None:
    topic, sub = await _setup(live, "drain")
    await _publish_many(live.publisher, topic, 5000, size=200)
    seen: dict[bytes, int] = {}
    lock = threading.Lock()

    def callback(message: pubsub_v1.subscriber.message.Message) -> None:
        message.ack()
        with lock:
            seen[message.data] = seen.get(message.data, 0) + 1

    flow = pubsub_v1.types.FlowControl(max_messages=2000)
    future = live.subscriber.subscribe(sub, callback, flow_control=flow)
    try:
        await eventually_async(lambda: len(seen) == 5000, timeout=60, what="all 5,000 delivered")
        await eventually_async(lambda: not live.service.state.subscriptions[sub].unacked, what="all acked")
    finally:
        await stop_streaming(future)
    assert set(seen.values()) == {1}
    # acked leases do not pile up in the expiry heap
    assert live.service.state.subscriptions[sub].expiry_items <= 2 * 2000 + 4096 + 2000


async def test_streaming_pull_packs_a_backlog_into_few_responses_under_the_default_size_limit(
    live: Local,
) -> None:
    topic, sub = await _setup(live, "packed")
    await _publish_many(live.publisher, topic, 400)
    await _publish_many(live.publisher, topic, 12, size=700_000)  # 8.4 MB: more than one response
    queue: asyncio.Queue[object] = asyncio.Queue()
    await queue.put(Request(subscription=sub, stream_ack_deadline_seconds=60))
    sizes: list[int] = []
    responses: list[Any] = []

    def decode(raw: bytes) -> Any:
        sizes.append(len(raw))
        return Response.FromString(raw)

    # a channel without options accepts at most 4 MiB per message
    async with grpc.aio.insecure_channel(live.service.address) as channel:
        stream = channel.stream_stream(
            "/google.pubsub.v1.Subscriber/StreamingPull",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=decode,
        )(requests_from(queue))
        while sum(len(r.received_messages) for r in responses) < 412:
            responses.append(await asyncio.wait_for(stream.read(), 10))
        await stop_streaming(stream)
    assert len(responses[0].received_messages) >= 400  # the whole small backlog in the first one
    assert all(size < 4 * 1024 * 1024 for size in sizes)
    assert len(responses) <= 5
    for response in responses:
        assert not response.subscription_properties.message_ordering_enabled
        for item in response.received_messages:
            assert item.ack_id and item.message.message_id and item.message.publish_time.seconds
            assert item.delivery_attempt == 0  # only with a dead-letter policy


async def test_streaming_pull_reports_delivery_attempts_with_a_dead_letter_policy(live: Local) -> None:
    dead_topic, _ = await _setup(live, "stream-dead")
    topic, sub = await _setup(
        live,
        "stream-attempts",
        dead_letter_policy={"dead_letter_topic": dead_topic, "max_delivery_attempts": 5},
    )
    attempts: list[int | None] = []
    lock = threading.Lock()

    def callback(message: pubsub_v1.subscriber.message.Message) -> None:
        with lock:
            attempts.append(message.delivery_attempt)
            if len(attempts) < 3:
                message.nack()
            else:
                message.ack()

    future = live.subscriber.subscribe(sub, callback)
    try:
        await _publish_many(live.publisher, topic, 1)
        await eventually_async(lambda: len(attempts) >= 3, what="three deliveries")
    finally:
        await stop_streaming(future)
    assert attempts[:3] == [1, 2, 3]
