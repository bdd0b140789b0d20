"""``X-CloudTasks-TaskExecutionCount`` as Google documents it (previous dispatches that got a response
from the handler, 5xx left out; https://cloud.google.com/tasks/docs/creating-http-target-tasks#handler),
and the ``refuse_dispatch`` fault: a busy platform that answers 429 or 503 itself, so the dispatch counts
as an attempt that never reached the handler."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.cloud import tasks_v2
from google.protobuf import duration_pb2, json_format, struct_pb2
from google.rpc import code_pb2

from localcloud.clock import ManualClock
from localcloud.tasks.faults import fault_client
from tests.support.eventually import eventually_async
from tests.support.http import RecordingHttpServer

from .conftest import PARENT, Started, advance_to_next_due, settle

QUEUE = f"{PARENT}/queues/saga-tasks"


def _seconds(value: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(int(value * 1e9))
    return duration


async def _queue(client: tasks_v2.CloudTasksAsyncClient, backoff: float = 1.0) -> None:
    retry = tasks_v2.RetryConfig(
        max_attempts=20, min_backoff=_seconds(backoff), max_backoff=_seconds(backoff), max_doublings=0
    )
    await client.create_queue(parent=PARENT, queue=tasks_v2.Queue(name=QUEUE, retry_config=retry))


async def _create(client: tasks_v2.CloudTasksAsyncClient, url: str, task_id: str) -> tasks_v2.Task:
    request = tasks_v2.HttpRequest(url=url, body=b"{}", headers={"Content-Type": "application/json"})
    task = tasks_v2.Task(name=f"{QUEUE}/tasks/{task_id}", http_request=request)
    return await client.create_task(parent=QUEUE, task=task)


async def _admin(address: str, method: str, **fields: Any) -> dict[str, Any]:
    message = struct_pb2.Struct()
    message.update(fields)
    async with grpc.aio.insecure_channel(address) as channel:
        answer = await fault_client(channel, method)(message)
    return dict(json_format.MessageToDict(answer))


async def _until_requests(
    started: Started, clock: ManualClock, target: RecordingHttpServer, count: int
) -> None:
    """Move the clock from wake-up to wake-up until ``target`` has seen ``count`` requests."""
    service, _ = started
    for _ in range(count * 4):
        await settle(service.dispatcher, clock)
        if len(target.requests) >= count:
            return
        await advance_to_next_due(service.dispatcher, clock)
    raise AssertionError(f"only {len(target.requests)} of {count} requests arrived")


async def test_the_execution_count_grows_for_every_answer_below_500_and_only_for_those(
    manual: Started, manual_clock: ManualClock, manual_target: RecordingHttpServer
) -> None:
    _, client = manual
    await _queue(client)
    manual_target.script_default(503, 424, 500, 429, 404, 200)
    await _create(client, manual_target.url("/step"), "counted")
    await _until_requests(manual, manual_clock, manual_target, 6)

    headers = [r.headers for r in manual_target.requests]
    assert [h["X-CloudTasks-TaskRetryCount"] for h in headers] == ["0", "1", "2", "3", "4", "5"]
    assert [h["X-CloudTasks-TaskExecutionCount"] for h in headers] == ["0", "0", "1", "1", "2", "3"]
    assert [h.get("X-CloudTasks-TaskPreviousResponse") for h in headers] == [
        None,
        "503",
        "424",
        "500",
        "429",
        "404",
    ]
    assert [h.get("X-CloudTasks-TaskRetryReason") for h in headers] == [None, "", "", "", "", ""]


@pytest.mark.parametrize(
    ("status", "code"), [(503, code_pb2.UNAVAILABLE), (429, code_pb2.RESOURCE_EXHAUSTED)]
)
async def test_a_refused_dispatch_is_an_attempt_that_never_reached_the_handler(
    manual: Started,
    manual_clock: ManualClock,
    manual_target: RecordingHttpServer,
    status: int,
    code: int,
) -> None:
    service, client = manual
    await _queue(client, backoff=2.0)
    await _admin(
        service.address,
        "InjectFault",
        kind="refuse_dispatch",
        task_prefix=f"{QUEUE}/tasks/busy-",
        status=status,
        times=2,
    )
    task = await _create(client, manual_target.url("/step"), "busy-1")

    await settle(service.dispatcher, manual_clock)
    await advance_to_next_due(service.dispatcher, manual_clock)  # the retry after the first refusal
    await settle(service.dispatcher, manual_clock)
    refused = await client.get_task(name=task.name)
    assert manual_target.requests == []
    assert (refused.dispatch_count, refused.response_count) == (2, 0)
    assert refused.last_attempt.response_status.code == code
    assert not tasks_v2.Attempt.pb(refused.last_attempt).HasField("response_time")
    assert await _admin(service.address, "ListFaults") == {"faults": []}  # spent

    await _until_requests(manual, manual_clock, manual_target, 1)
    [request] = manual_target.requests
    assert request.headers["X-CloudTasks-TaskRetryCount"] == "2"
    assert request.headers["X-CloudTasks-TaskExecutionCount"] == "0"
    assert request.headers["X-CloudTasks-TaskPreviousResponse"] == str(status)
    # The refusals were retried with the queue's backoff, like any failed attempt.
    assert request.at - refused.first_attempt.dispatch_time.timestamp() == pytest.approx(4.0)
    await eventually_async(lambda: not service.state.queues[QUEUE].tasks, what="the task to end on its 200")


async def test_a_refusal_fault_fires_only_on_matching_dispatches_and_never_on_creates(
    manual: Started, manual_clock: ManualClock, manual_target: RecordingHttpServer
) -> None:
    service, client = manual
    await _queue(client)
    armed = await _admin(
        service.address, "InjectFault", kind="refuse_dispatch", task_prefix=f"{QUEUE}/tasks/a-", times=3
    )
    assert armed["status"] == 503  # the default
    await _create(client, manual_target.url("/b"), "b-1")  # not matched: goes through at once
    await _create(client, manual_target.url("/a"), "a-1")  # the create itself is not refused
    await _until_requests(manual, manual_clock, manual_target, 2)

    assert [r.path for r in manual_target.requests] == ["/b", "/a"]
    assert manual_target.requests_to("/a")[0].headers["X-CloudTasks-TaskRetryCount"] == "3"
    assert manual_target.requests_to("/b")[0].headers["X-CloudTasks-TaskRetryCount"] == "0"


async def test_a_refusal_fault_left_armed_is_listed_with_what_remains_and_cleared(live: Started) -> None:
    service, _ = live
    await _admin(service.address, "InjectFault", kind="refuse_dispatch", queue=QUEUE, status=429, times=5)
    listed = await _admin(service.address, "ListFaults")
    assert listed == {
        "faults": [
            {"kind": "refuse_dispatch", "queue": QUEUE, "task_prefix": "", "status": 429.0, "remaining": 5.0}
        ]
    }
    await _admin(service.address, "ClearFaults")
    assert await _admin(service.address, "ListFaults") == {"faults": []}


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "refuse_dispatch", "queue": QUEUE, "status": 404},
        {"kind": "refuse_dispatch", "queue": QUEUE, "times": 0},
        {"kind": "refuse_dispatch", "queue": QUEUE, "times": 1.5},
        {"kind": "permission_denied", "queue": QUEUE, "status": 503},
    ],
    ids=["status-not-429-or-503", "times-zero", "times-not-whole", "status-on-a-create-fault"],
)
async def test_a_refusal_fault_is_checked_when_armed(live: Started, fields: dict[str, Any]) -> None:
    service, _ = live
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _admin(service.address, "InjectFault", **fields)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
