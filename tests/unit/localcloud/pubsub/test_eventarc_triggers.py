from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import functions_framework
import pytest
from cloudevents.http import from_http
from werkzeug.serving import make_server

from localcloud.clock import ManualClock
from localcloud.eventarc.triggers import create_pubsub_trigger
from tests.support.eventually import eventually_async
from tests.support.http import RecordingHttpServer

from .conftest import PROJECT, Local, call

REGION = "us-central1"


async def _trigger(
    local: Local, topic_id: str, url: str, *, retry: bool, trigger: str = "saga-trigger"
) -> str:
    await call(local.publisher.create_topic, name=local.topic(topic_id))
    return await call(
        create_pubsub_trigger,
        local.subscriber,
        project=PROJECT,
        region=REGION,
        trigger=trigger,
        topic=topic_id,
        destination_url=url,
        retry=retry,
    )


async def _publish(local: Local, topic_id: str, data: bytes, **attributes: str) -> str:
    future = await call(local.publisher.publish, local.topic(topic_id), data, **attributes)
    return str(await call(future.result, 10))


async def test_trigger_delivers_a_binary_cloudevent_of_the_documented_shape(
    live: Local, endpoint: RecordingHttpServer
) -> None:
    subscription = await _trigger(live, "saga-requests", endpoint.url(), retry=True)
    message_id = await _publish(live, "saga-requests", b'{"saga_id": "trip-1"}', origin="test")
    await eventually_async(lambda: endpoint.requests, what="event")
    (request,) = endpoint.requests
    headers = request.headers
    assert headers["ce-specversion"] == "1.0"
    assert headers["ce-type"] == "google.cloud.pubsub.topic.v1.messagePublished"
    assert headers["ce-source"] == f"//pubsub.googleapis.com/projects/{PROJECT}/topics/saga-requests"
    assert headers["ce-id"] == message_id
    assert headers["Content-Type"] == "application/json"
    event = from_http(headers, request.body)
    assert event["id"] == message_id and event["time"] == headers["ce-time"]
    data = event.data
    assert isinstance(data, dict)
    assert re.fullmatch(
        rf"projects/{PROJECT}/subscriptions/eventarc-{REGION}-saga-trigger-sub-\d{{3}}", data["subscription"]
    )
    assert data["subscription"] == subscription
    message = data["message"]
    assert message["@type"] == "type.googleapis.com/google.pubsub.v1.PubsubMessage"
    assert json.loads(base64.b64decode(message["data"])) == {"saga_id": "trip-1"}
    assert message["attributes"] == {"origin": "test"}
    assert message["messageId"] == message["message_id"] == message_id
    assert message["publishTime"] == message["publish_time"] == headers["ce-time"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?Z", message["publishTime"])
    assert "orderingKey" not in message


@pytest.fixture
def function_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """A real functions-framework CloudEvent function behind a real HTTP server; it writes what it got."""
    out = tmp_path / "events.jsonl"
    source = tmp_path / "main.py"
    source.write_text(
        "import json, functions_framework\n"
        "@functions_framework.cloud_event\n"
        "def receive(event):\n"
        f"    with open({str(out)!r}, 'a') as f:\n"
        "        f.write(json.dumps({'attributes': dict(event.get_attributes()), 'data': event.data}) + '\\n')\n"
    )
    monkeypatch.setenv("FUNCTION_SIGNATURE_TYPE", "cloudevent")
    app = functions_framework.create_app("receive", str(source), "cloudevent")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/", out
    server.shutdown()
    thread.join(5)


async def test_functions_framework_function_receives_the_event(
    live: Local, function_server: tuple[str, Path]
) -> None:
    url, out = function_server
    await _trigger(live, "ff-topic", url, retry=False)
    message_id = await _publish(live, "ff-topic", b"hello")
    await eventually_async(lambda: out.exists() and out.read_text().strip(), what="function called")
    received = json.loads(out.read_text().splitlines()[0])
    assert received["attributes"]["id"] == message_id
    assert received["attributes"]["type"] == "google.cloud.pubsub.topic.v1.messagePublished"
    assert base64.b64decode(received["data"]["message"]["data"]) == b"hello"
    assert received["data"]["subscription"].startswith(f"projects/{PROJECT}/subscriptions/eventarc-")


async def test_trigger_with_retry_redelivers_with_exponential_backoff_from_10s(
    manual: Local, manual_clock: ManualClock, endpoint: RecordingHttpServer
) -> None:
    endpoint.clock = manual_clock
    endpoint.script_default(500, 500, 500, 200)
    await _trigger(manual, "retry-topic", endpoint.url(), retry=True)
    message_id = await _publish(manual, "retry-topic", b"x")
    for expected_attempts, wait in ((1, 10), (2, 20), (3, 40)):
        await eventually_async(_count_is(endpoint, expected_attempts), what=f"attempt {expected_attempts}")
        await eventually_async(_nacked(manual), what="nack processed")
        await manual_clock.advance(wait - 1)
        assert len(endpoint.requests) == expected_attempts
        await manual_clock.advance(1)
    await eventually_async(lambda: len(endpoint.requests) == 4, what="fourth attempt")
    gaps = [round(b.at - a.at) for a, b in zip(endpoint.requests, endpoint.requests[1:], strict=False)]
    assert gaps == [10, 20, 40]
    assert {r.headers["ce-id"] for r in endpoint.requests} == {message_id}
    await eventually_async(
        lambda: not manual.service.state.subscriptions[manual.subscription(_sub_id(manual))].entries,
        what="acked",
    )


def _count_is(endpoint: RecordingHttpServer, count: int) -> Callable[[], bool]:
    return lambda: len(endpoint.requests) == count


def _nacked(local: Local) -> Callable[[], bool]:
    def check() -> bool:
        entries = local.service.state.subscriptions[local.subscription(_sub_id(local))].entries
        return bool(entries) and entries[0].lease is None

    return check


def _sub_id(local: Local) -> str:
    (name,) = [n for n in local.service.state.subscriptions if "eventarc-" in n]
    return name.rsplit("/", 1)[1]


async def test_trigger_without_retry_drops_a_failed_event(
    manual: Local, manual_clock: ManualClock, endpoint: RecordingHttpServer
) -> None:
    endpoint.script_default(500, 200)
    subscription = await _trigger(manual, "noretry-topic", endpoint.url(), retry=False)
    await _publish(manual, "noretry-topic", b"x")
    await eventually_async(lambda: len(endpoint.requests) == 1, what="attempt")
    state = manual.service.state
    await eventually_async(lambda: not state.subscriptions[subscription].entries, what="dropped")
    await manual_clock.advance(3600)
    assert len(endpoint.requests) == 1


async def test_create_pubsub_trigger_is_idempotent_and_updates_the_destination(
    live: Local, endpoint: RecordingHttpServer
) -> None:
    first = await _trigger(live, "idem-topic", "http://127.0.0.1:9/old", retry=False)
    second = await call(
        create_pubsub_trigger,
        live.subscriber,
        project=PROJECT,
        region=REGION,
        trigger="saga-trigger",
        topic=f"projects/{PROJECT}/topics/idem-topic",
        destination_url=endpoint.url(),
        retry=True,
    )
    assert first == second
    stored = await call(live.subscriber.get_subscription, subscription=first)
    assert stored.push_config.push_endpoint == endpoint.url()
    assert dict(stored.push_config.attributes) == {
        "x-localcloud-eventarc-trigger": "saga-trigger",
        "x-localcloud-eventarc-retry": "true",
    }
    assert stored.ack_deadline_seconds == 600
    assert stored.retry_policy.minimum_backoff.total_seconds() == 10
    assert stored.retry_policy.maximum_backoff.total_seconds() == 600
    assert stored.message_retention_duration.total_seconds() == 24 * 3600
