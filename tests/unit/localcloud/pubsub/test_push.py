from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from functools import partial

from google.auth import jwt

from localcloud.clock import ManualClock
from tests.support.eventually import eventually_async
from tests.support.http import RecordingHttpServer

from .conftest import Local, call


async def _push_setup(
    local: Local, name: str, push_config: Mapping[str, object], **extra: object
) -> tuple[str, str]:
    topic, sub = local.topic(f"topic-{name}"), local.subscription(f"sub-{name}")
    await call(local.publisher.create_topic, name=topic)
    await call(
        local.subscriber.create_subscription,
        request={"name": sub, "topic": topic, "push_config": push_config, **extra},
    )
    return topic, sub


async def test_wrapped_push_sends_the_documented_json(live: Local, endpoint: RecordingHttpServer) -> None:
    topic, sub = await _push_setup(live, "wrapped", {"push_endpoint": endpoint.url("/push")})
    future = await call(live.publisher.publish, topic, b"payload", kind="order", ordering_key="")
    message_id = await call(future.result, 10)
    await eventually_async(lambda: endpoint.requests, what="push")
    (request,) = endpoint.requests
    body = json.loads(request.body)
    assert request.path == "/push"
    assert request.headers["Content-Type"] == "application/json"
    assert body["subscription"] == sub
    assert "deliveryAttempt" not in body
    message = body["message"]
    assert base64.b64decode(message["data"]) == b"payload"
    assert message["attributes"] == {"kind": "order"}
    assert message["messageId"] == message["message_id"] == message_id
    assert message["publishTime"] == message["publish_time"] and message["publishTime"].endswith("Z")
    assert "orderingKey" not in message


async def test_push_acks_on_success_codes_and_retries_others(
    live: Local, endpoint: RecordingHttpServer
) -> None:
    endpoint.script_default(500, 429, 404, 202)
    topic, sub = await _push_setup(live, "codes", {"push_endpoint": endpoint.url()})
    future = await call(live.publisher.publish, topic, b"x")
    await call(future.result, 10)
    await eventually_async(lambda: len(endpoint.requests) == 4, what="four attempts")
    await eventually_async(lambda: not live.service.state.subscriptions[sub].entries, what="acked after 202")
    assert len({r.body for r in endpoint.requests}) == 1


def _delivered(local: Local, sub: str, endpoint: RecordingHttpServer, count: int) -> bool:
    """``count`` pushes arrived and the last one's answer was read (the message is acked): the server
    records a request before it answers, so the connection is back in the pool only after the ack."""
    return len(endpoint.requests) == count and not local.service.state.subscriptions[sub].entries


async def test_push_reuses_one_kept_alive_connection_for_messages_in_sequence(
    live: Local, endpoint: RecordingHttpServer
) -> None:
    topic, sub = await _push_setup(live, "keepalive", {"push_endpoint": endpoint.url()})
    for n in range(3):
        await call((await call(live.publisher.publish, topic, b"m%d" % n)).result, 10)
        await eventually_async(partial(_delivered, live, sub, endpoint, n + 1), what=f"push {n}")
    assert len({r.client_port for r in endpoint.requests}) == 1


async def test_push_with_dead_letter_policy_reports_delivery_attempt(
    live: Local, endpoint: RecordingHttpServer
) -> None:
    endpoint.script_default(503, 200)
    dead = live.topic("topic-dl-target")
    await call(live.publisher.create_topic, name=dead)
    topic, _ = await _push_setup(
        live,
        "dl-push",
        {"push_endpoint": endpoint.url()},
        dead_letter_policy={"dead_letter_topic": dead, "max_delivery_attempts": 5},
    )
    await call((await call(live.publisher.publish, topic, b"x")).result, 10)
    await eventually_async(lambda: len(endpoint.requests) == 2, what="redelivery")
    attempts = [json.loads(r.body)["deliveryAttempt"] for r in endpoint.requests]
    assert attempts == [1, 2]


async def test_unwrapped_push_sends_raw_data_and_metadata_headers(
    live: Local, endpoint: RecordingHttpServer
) -> None:
    config = {"push_endpoint": endpoint.url(), "no_wrapper": {"write_metadata": True}}
    topic, sub = await _push_setup(live, "raw", config)
    message_id = await call((await call(live.publisher.publish, topic, b"\x00raw", colour="red")).result, 10)
    await eventually_async(lambda: endpoint.requests, what="push")
    (request,) = endpoint.requests
    assert request.body == b"\x00raw"
    assert request.headers["x-goog-pubsub-subscription-name"] == sub
    assert request.headers["x-goog-pubsub-message-id"] == message_id
    assert request.headers["x-goog-pubsub-publish-time"].endswith("Z")
    assert request.headers["colour"] == "red"


async def test_push_with_oidc_token_sends_a_verifiable_bearer(
    live: Local, endpoint: RecordingHttpServer
) -> None:
    config = {
        "push_endpoint": endpoint.url(),
        "oidc_token": {
            "service_account_email": "pusher@local-project.iam.gserviceaccount.com",
            "audience": "aud-1",
        },
    }
    topic, _ = await _push_setup(live, "oidc", config)
    await call((await call(live.publisher.publish, topic, b"x")).result, 10)
    await eventually_async(lambda: endpoint.requests, what="push")
    token = endpoint.requests[0].headers["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, certs=live.service.push.authority.certificates(), audience="aud-1")
    assert claims["email"] == "pusher@local-project.iam.gserviceaccount.com"


async def test_push_without_retry_policy_backs_off_from_a_small_floor(
    manual: Local, manual_clock: ManualClock, endpoint: RecordingHttpServer
) -> None:
    endpoint.script_default(500, 200)
    topic, _ = await _push_setup(manual, "floor", {"push_endpoint": endpoint.url()})
    await call((await call(manual.publisher.publish, topic, b"x")).result, 10)
    await eventually_async(lambda: len(endpoint.requests) == 1, what="first attempt")
    entries = manual.service.state.subscriptions[manual.subscription("sub-floor")].entries
    await eventually_async(lambda: entries and entries[0].lease is None, what="nack processed")
    assert len(endpoint.requests) == 1  # not retried in a hot loop while the clock stands still
    await manual_clock.advance(0.2)
    await eventually_async(lambda: len(endpoint.requests) == 2, what="retry after the floor")


async def test_modify_push_config_switches_between_pull_and_push(
    live: Local, endpoint: RecordingHttpServer
) -> None:
    topic, sub = live.topic("topic-switch"), live.subscription("sub-switch")
    await call(live.publisher.create_topic, name=topic)
    await call(live.subscriber.create_subscription, name=sub, topic=topic)
    await call((await call(live.publisher.publish, topic, b"pulled")).result, 10)
    await call(
        live.subscriber.modify_push_config, subscription=sub, push_config={"push_endpoint": endpoint.url()}
    )
    await eventually_async(lambda: endpoint.requests, what="pushed after switching to push")
    assert json.loads(endpoint.requests[0].body)["message"]["data"] == base64.b64encode(b"pulled").decode()
    await eventually_async(lambda: not live.service.state.subscriptions[sub].entries, what="acked")
    await call(live.subscriber.modify_push_config, subscription=sub, push_config={})
    await call((await call(live.publisher.publish, topic, b"second")).result, 10)
    pulled = await call(live.subscriber.pull, subscription=sub, max_messages=5)
    assert [m.message.data for m in pulled.received_messages] == [b"second"]
    assert len(endpoint.requests) == 1
