"""Starts on the real local stack: 500 deliveries of one saga request at the same instant start exactly one
execution and publish one result; each delivery went through its claim in the start bucket (Cloud
Storage emulator), and none looked for the saga with an Executions list call of its own."""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from google.cloud.workflows import executions_v1
from saga_orchestrator.settings import Settings
from saga_orchestrator.starts import object_name

from devstack.stack import LocalStack
from tests.e2e.results import ResultListener

pytestmark = pytest.mark.e2e

DUPLICATES = 500
RESULT_TIMEOUT = 20.0
REDELIVER_FOR = 15.0  # seconds a delivery answered "in progress" is sent again, as Eventarc would


def storage_calls(stack: LocalStack) -> dict[str, int]:
    with urllib.request.urlopen(f"http://{stack.config.storage}/admin/calls", timeout=10) as answer:
        return dict(json.loads(answer.read())["calls"])


def labelled_executions(stack: LocalStack, saga_id: str) -> list[executions_v1.Execution]:
    """The saga's executions, read by this test (the start path itself lists nothing)."""
    workflow = Settings.from_env(stack.function_environment()).workflow_path
    pager = stack.factory.executions().list_executions(
        request=executions_v1.ListExecutionsRequest(parent=workflow, filter=f'labels.saga_id="{saga_id}"')
    )
    return list(pager)


def deliverer(stack: LocalStack, request: dict[str, Any]) -> Callable[[str], int]:
    """Sends one Eventarc delivery of ``request`` (binary-mode CloudEvent) to start_saga; its status."""
    topic = f"//pubsub.googleapis.com/projects/{stack.settings.project_id}/topics/saga-requests"
    data = base64.b64encode(json.dumps(request).encode()).decode()

    def deliver(message_id: str) -> int:
        body = {
            "message": {"data": data, "messageId": message_id, "publishTime": "2026-12-06T12:00:00.000Z"},
            "subscription": f"projects/{stack.settings.project_id}/subscriptions/eventarc-start-saga",
        }
        headers = {
            "Content-Type": "application/json",
            "ce-id": message_id,
            "ce-source": topic,
            "ce-specversion": "1.0",
            "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
            "ce-time": "2026-12-06T12:00:00.000Z",
        }
        sent = urllib.request.Request(
            stack.function_urls.start_saga, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(sent, timeout=60) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as refused:
            return int(refused.code)

    return deliver


def deliver_until_acknowledged(deliver: Callable[[str], int], message_ids: list[str]) -> dict[str, int]:
    """Every delivery at the same instant, then again (as Eventarc redelivers) any not acknowledged;
    the number of deliveries each message took."""
    gate = threading.Barrier(len(message_ids))
    tries = dict.fromkeys(message_ids, 0)

    def first(message_id: str) -> tuple[str, int]:
        gate.wait()
        tries[message_id] += 1
        return message_id, deliver(message_id)

    with ThreadPoolExecutor(max_workers=len(message_ids)) as pool:
        pending = [m for m, status in pool.map(first, message_ids) if not 200 <= status < 300]
    deadline = time.monotonic() + REDELIVER_FOR
    while pending and time.monotonic() < deadline:
        time.sleep(0.2)
        for message_id in list(pending):
            tries[message_id] += 1
            if 200 <= deliver(message_id) < 300:
                pending.remove(message_id)
    assert pending == [], f"{len(pending)} deliveries were never acknowledged"
    return tries


def test_500_simultaneous_deliveries_of_one_request_start_one_saga_and_publish_one_result(
    stack: LocalStack, results: ResultListener
) -> None:
    saga_id = f"dup-{uuid.uuid4().hex[:12]}"
    request = stack.example_request("trip-succeeds", saga_id=saga_id)
    before = storage_calls(stack)
    message_ids = [f"{saga_id}-{n}" for n in range(DUPLICATES)]

    tries = deliver_until_acknowledged(deliverer(stack, request), message_ids)

    [execution] = labelled_executions(stack, saga_id)
    result = results.wait(saga_id, RESULT_TIMEOUT)
    assert result is not None, f"no result for {saga_id} (logs: {stack.log_dir})"
    assert result.data["status"] == "succeeded" and result.data["execution"] == execution.name
    claim = stack.factory.storage().bucket(Settings.from_env(stack.function_environment()).start_bucket)
    recorded = claim.get_blob(object_name(saga_id))
    assert recorded is not None and recorded.metadata["execution"] == execution.name
    after = storage_calls(stack)
    # Every delivery tried to create the claim (one succeeded); the losers read it instead of listing.
    inserts = after.get("storage.objects.insert", 0) - before.get("storage.objects.insert", 0)
    assert inserts == sum(tries.values())
    assert after.get("storage.objects.list", 0) == before.get("storage.objects.list", 0)
    assert [e.name for e in labelled_executions(stack, saga_id)] == [execution.name]
    assert [event.id for event in results.events(saga_id)] == [result.id]


def test_a_request_published_again_and_again_starts_its_saga_once(
    stack: LocalStack, results: ResultListener
) -> None:
    saga_id = f"dup-pub-{uuid.uuid4().hex[:12]}"
    request = stack.example_request("trip-succeeds", saga_id=saga_id)
    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(lambda _: stack.publish_request(request), range(100)))
    result = results.wait(saga_id, RESULT_TIMEOUT)
    assert result is not None, f"no result for {saga_id} (logs: {stack.log_dir})"
    [execution] = labelled_executions(stack, saga_id)
    assert result.data["execution"] == execution.name
    assert [event.id for event in results.events(saga_id)] == [result.id]
