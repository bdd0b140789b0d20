from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
import pytest
from google.api_core import exceptions as gexc
from google.cloud import tasks_v2
from google.iam.v1 import iam_policy_pb2, policy_pb2
from google.protobuf import duration_pb2, field_mask_pb2

from localcloud.clock import ManualClock
from localcloud.tasks.server import CloudTasksService

PARENT = "projects/local-project/locations/us-central1"
Started = tuple[CloudTasksService, tasks_v2.CloudTasksAsyncClient]
Starter = Callable[..., Awaitable[Started]]

Queue = tasks_v2.Queue


def _queue(name: str = "saga-tasks", **fields: object) -> Queue:
    return Queue(name=f"{PARENT}/queues/{name}", **fields)


async def test_new_queue_gets_the_documented_defaults(live: Started) -> None:
    _, client = live
    queue = await client.create_queue(parent=PARENT, queue=_queue())
    assert queue.state == Queue.State.RUNNING
    assert queue.rate_limits.max_dispatches_per_second == 500
    assert queue.rate_limits.max_burst_size == 100
    assert queue.rate_limits.max_concurrent_dispatches == 1000
    retry = queue.retry_config
    assert retry.max_attempts == 100
    assert retry.min_backoff.total_seconds() == pytest.approx(0.1)
    assert retry.max_backoff.total_seconds() == 3600
    assert retry.max_doublings == 16
    assert retry.max_retry_duration.total_seconds() == 0
    assert await client.get_queue(name=queue.name) == queue


async def test_existing_queue_is_already_exists_and_unknown_queue_is_not_found(live: Started) -> None:
    _, client = live
    await client.create_queue(parent=PARENT, queue=_queue())
    with pytest.raises(gexc.AlreadyExists):
        await client.create_queue(parent=PARENT, queue=_queue())
    with pytest.raises(gexc.NotFound):
        await client.get_queue(name=f"{PARENT}/queues/missing")


@pytest.mark.parametrize(
    ("queue", "field"),
    [
        (_queue(rate_limits=tasks_v2.RateLimits(max_dispatches_per_second=501)), "max_dispatches_per_second"),
        (
            _queue(rate_limits=tasks_v2.RateLimits(max_concurrent_dispatches=5001)),
            "max_concurrent_dispatches",
        ),
        (_queue(retry_config=tasks_v2.RetryConfig(max_attempts=-2)), "retry_config.max_attempts"),
        (
            _queue(
                retry_config=tasks_v2.RetryConfig(
                    min_backoff=duration_pb2.Duration(seconds=10),
                    max_backoff=duration_pb2.Duration(seconds=5),
                )
            ),
            "retry_config.max_backoff",
        ),
        (_queue(retry_config=tasks_v2.RetryConfig(max_doublings=-1)), "retry_config.max_doublings"),
        (Queue(name=f"{PARENT}/queues/bad_underscore"), "queue.name"),
        (Queue(name="projects/p/locations/l/queues/elsewhere"), "queue.name"),
    ],
)
async def test_invalid_settings_are_invalid_argument_naming_the_field(
    live: Started, queue: Queue, field: str
) -> None:
    _, client = live
    with pytest.raises(gexc.InvalidArgument, match=field):
        await client.create_queue(parent=PARENT, queue=queue)


async def test_update_queue_changes_only_the_masked_fields(live: Started) -> None:
    _, client = live
    await client.create_queue(parent=PARENT, queue=_queue())
    updated = await client.update_queue(
        queue=_queue(
            retry_config=tasks_v2.RetryConfig(max_attempts=5, max_doublings=2),
            rate_limits=tasks_v2.RateLimits(max_dispatches_per_second=10),
        ),
        update_mask=field_mask_pb2.FieldMask(
            paths=["retry_config.max_attempts", "rate_limits.max_dispatches_per_second"]
        ),
    )
    assert updated.retry_config.max_attempts == 5
    assert updated.retry_config.max_doublings == 16
    assert updated.rate_limits.max_dispatches_per_second == 10
    assert updated.rate_limits.max_burst_size == 10
    with pytest.raises(gexc.InvalidArgument, match="update_mask"):
        await client.update_queue(queue=_queue(), update_mask=field_mask_pb2.FieldMask(paths=["state"]))
    with pytest.raises(gexc.InvalidArgument, match="max_dispatches_per_second"):
        await client.update_queue(
            queue=_queue(rate_limits=tasks_v2.RateLimits(max_dispatches_per_second=1000)),
            update_mask=field_mask_pb2.FieldMask(paths=["rate_limits.max_dispatches_per_second"]),
        )


async def test_update_queue_creates_a_missing_queue(live: Started) -> None:
    _, client = live
    created = await client.update_queue(
        queue=_queue("upserted", retry_config=tasks_v2.RetryConfig(max_attempts=7))
    )
    assert created.retry_config.max_attempts == 7
    assert (await client.get_queue(name=created.name)).state == Queue.State.RUNNING


async def test_pause_resume_and_list_with_state_filter(live: Started) -> None:
    _, client = live
    for name in ("a", "b", "c"):
        await client.create_queue(parent=PARENT, queue=_queue(name))
    paused = await client.pause_queue(name=f"{PARENT}/queues/b")
    assert paused.state == Queue.State.PAUSED
    names = [q.name.rsplit("/", 1)[1] async for q in await client.list_queues(parent=PARENT)]
    assert names == ["a", "b", "c"]
    only_paused = [
        q.name.rsplit("/", 1)[1]
        async for q in await client.list_queues(
            request=tasks_v2.ListQueuesRequest(parent=PARENT, filter="state: PAUSED")
        )
    ]
    assert only_paused == ["b"]
    paged = await client.list_queues(request=tasks_v2.ListQueuesRequest(parent=PARENT, page_size=1))
    assert len([q async for q in paged]) == 3
    resumed = await client.resume_queue(name=f"{PARENT}/queues/b")
    assert resumed.state == Queue.State.RUNNING


async def test_purge_removes_every_task_and_records_the_purge_time(live: Started) -> None:
    _, client = live
    queue = await client.create_queue(parent=PARENT, queue=_queue())
    await client.pause_queue(name=queue.name)
    for _ in range(3):
        await client.create_task(
            parent=queue.name,
            task=tasks_v2.Task(http_request=tasks_v2.HttpRequest(url="http://127.0.0.1:9/x")),
        )
    purged = await client.purge_queue(name=queue.name)
    assert purged.purge_time is not None
    assert [t async for t in await client.list_tasks(parent=queue.name)] == []


async def test_deleted_queue_name_cannot_be_reused_for_seven_days(start_tasks: Starter) -> None:
    clock = ManualClock()
    _, client = await start_tasks(clock)
    queue = await client.create_queue(parent=PARENT, queue=_queue())
    await client.delete_queue(name=queue.name)
    with pytest.raises(gexc.NotFound):
        await client.get_queue(name=queue.name)
    with pytest.raises(gexc.FailedPrecondition, match="existed too recently"):
        await client.create_queue(parent=PARENT, queue=_queue())
    await clock.advance(7 * 24 * 3600)
    assert (await client.create_queue(parent=PARENT, queue=_queue())).name == queue.name


async def test_queue_iam_policy_round_trips(live: Started) -> None:
    _, client = live
    queue = await client.create_queue(parent=PARENT, queue=_queue())
    policy = policy_pb2.Policy(
        bindings=[policy_pb2.Binding(role="roles/cloudtasks.enqueuer", members=["user:a@example.com"])]
    )
    await client.set_iam_policy(
        request=iam_policy_pb2.SetIamPolicyRequest(resource=queue.name, policy=policy)
    )
    fetched = await client.get_iam_policy(request=iam_policy_pb2.GetIamPolicyRequest(resource=queue.name))
    assert list(fetched.bindings) == list(policy.bindings)
    allowed = await client.test_iam_permissions(
        request=iam_policy_pb2.TestIamPermissionsRequest(
            resource=queue.name, permissions=["cloudtasks.tasks.create", "x.y"]
        )
    )
    assert list(allowed.permissions) == ["cloudtasks.tasks.create"]


async def test_garbage_requests_do_not_take_the_server_down(live: Started) -> None:
    service, client = live
    channel = grpc.aio.insecure_channel(service.address)
    call = channel.unary_unary(
        "/google.cloud.tasks.v2.CloudTasks/CreateTask",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    with pytest.raises(grpc.aio.AioRpcError):
        await call(b"\x0a\xff\xff\xff\xff\x0f")
    await channel.close()
    with pytest.raises(gexc.InvalidArgument):
        await client.create_queue(parent="nonsense", queue=_queue())
    assert (await client.create_queue(parent=PARENT, queue=_queue())).name.endswith("saga-tasks")
