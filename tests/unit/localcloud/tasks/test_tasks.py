from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from google.api_core import exceptions as gexc
from google.cloud import tasks_v2
from google.protobuf import duration_pb2, timestamp_pb2

from localcloud.clock import ManualClock
from localcloud.tasks.server import CloudTasksService
from tests.support.eventually import eventually_async
from tests.support.http import RecordingHttpServer

PARENT = "projects/local-project/locations/us-central1"
QUEUE = f"{PARENT}/queues/saga-tasks"
Started = tuple[CloudTasksService, tasks_v2.CloudTasksAsyncClient]
Starter = Callable[..., Awaitable[Started]]
View = tasks_v2.Task.View


def _task(url: str = "http://127.0.0.1:9/step", name: str = "", **request: object) -> tasks_v2.Task:
    return tasks_v2.Task(name=name, http_request=tasks_v2.HttpRequest(url=url, **request))


async def _paused_queue(client: tasks_v2.CloudTasksAsyncClient) -> None:
    await client.create_queue(parent=PARENT, queue=tasks_v2.Queue(name=QUEUE))
    await client.pause_queue(name=QUEUE)


async def test_unnamed_task_gets_a_server_generated_numeric_id(live: Started) -> None:
    _, client = live
    await _paused_queue(client)
    task = await client.create_task(parent=QUEUE, task=_task())
    task_id = task.name.rsplit("/", 1)[1]
    assert task.name.startswith(f"{QUEUE}/tasks/") and task_id.isdigit() and len(task_id) >= 19
    assert task.dispatch_deadline.total_seconds() == 600
    assert task.create_time is not None and task.schedule_time is not None


async def test_basic_view_hides_body_and_headers_and_full_view_shows_them(live: Started) -> None:
    _, client = live
    await _paused_queue(client)
    created = await client.create_task(
        parent=QUEUE, task=_task(body=b'{"a": 1}', headers={"Content-Type": "application/json"})
    )
    assert created.view == View.BASIC
    assert created.http_request.body == b"" and dict(created.http_request.headers) == {}
    full = await client.get_task(request=tasks_v2.GetTaskRequest(name=created.name, response_view=View.FULL))
    assert full.view == View.FULL
    assert full.http_request.body == b'{"a": 1}'
    assert full.http_request.headers == {"Content-Type": "application/json"}
    listed = [
        t
        async for t in await client.list_tasks(
            request=tasks_v2.ListTasksRequest(parent=QUEUE, response_view=View.FULL)
        )
    ]
    assert [t.http_request.body for t in listed] == [b'{"a": 1}']


async def test_named_task_is_deduplicated_while_it_exists_and_after_deletion(start_tasks: Starter) -> None:
    clock = ManualClock()
    _, client = await start_tasks(clock, task_tombstone_seconds=600)
    await _paused_queue(client)
    name = f"{QUEUE}/tasks/exec-1-0-execute"
    await client.create_task(parent=QUEUE, task=_task(name=name))
    with pytest.raises(gexc.AlreadyExists):
        await client.create_task(parent=QUEUE, task=_task(name=name))
    await client.delete_task(name=name)
    with pytest.raises(gexc.NotFound):
        await client.get_task(name=name)
    with pytest.raises(gexc.AlreadyExists):
        await client.create_task(parent=QUEUE, task=_task(name=name))
    await clock.advance(599)
    with pytest.raises(gexc.AlreadyExists):
        await client.create_task(parent=QUEUE, task=_task(name=name))
    await clock.advance(1)
    assert (await client.create_task(parent=QUEUE, task=_task(name=name))).name == name


async def test_name_of_a_task_that_succeeded_stays_taken(live: Started, target: RecordingHttpServer) -> None:
    service, client = live
    await client.create_queue(parent=PARENT, queue=tasks_v2.Queue(name=QUEUE))
    name = f"{QUEUE}/tasks/once"
    await client.create_task(parent=QUEUE, task=_task(target.url(), name=name))
    await eventually_async(lambda: not service.state.queues[QUEUE].tasks, what="the task to succeed")
    assert len(target.requests) == 1
    with pytest.raises(gexc.AlreadyExists):
        await client.create_task(parent=QUEUE, task=_task(target.url(), name=name))
    with pytest.raises(gexc.NotFound):
        await client.run_task(name=name)


@pytest.mark.parametrize(
    ("task", "field"),
    [
        (_task(name=f"{QUEUE}/tasks/bad.dot"), "task.name"),
        (_task(name=f"{PARENT}/queues/other/tasks/x"), "task.name"),
        (_task(url="ftp://example.com/x"), "url"),
        (_task(url="http://example.com/" + "x" * 2100), "url"),
        (_task(http_method=tasks_v2.HttpMethod.GET, body=b"x"), "body"),
        (_task(oidc_token=tasks_v2.OidcToken(audience="x")), "oidc_token.service_account_email"),
        (tasks_v2.Task(), "http_request"),
        (
            tasks_v2.Task(
                http_request=tasks_v2.HttpRequest(url="http://127.0.0.1:9/"),
                dispatch_deadline=duration_pb2.Duration(seconds=14),
            ),
            "dispatch_deadline",
        ),
        (
            tasks_v2.Task(
                http_request=tasks_v2.HttpRequest(url="http://127.0.0.1:9/"),
                dispatch_deadline=duration_pb2.Duration(seconds=1801),
            ),
            "dispatch_deadline",
        ),
        (_task(body=b"x" * (100 * 1024 + 1)), "Task size too large"),
    ],
)
async def test_invalid_tasks_are_invalid_argument_naming_the_field(
    live: Started, task: tasks_v2.Task, field: str
) -> None:
    _, client = live
    await _paused_queue(client)
    with pytest.raises(gexc.InvalidArgument, match=field):
        await client.create_task(parent=QUEUE, task=task)


async def test_schedule_time_more_than_thirty_days_ahead_is_invalid(start_tasks: Starter) -> None:
    clock = ManualClock()
    _, client = await start_tasks(clock)
    await _paused_queue(client)
    too_far = timestamp_pb2.Timestamp(seconds=int(clock.now() + 31 * 24 * 3600))
    with pytest.raises(gexc.InvalidArgument, match="schedule_time"):
        await client.create_task(
            parent=QUEUE,
            task=tasks_v2.Task(http_request=tasks_v2.HttpRequest(url="http://h/"), schedule_time=too_far),
        )


async def test_task_in_a_missing_queue_is_not_found(live: Started) -> None:
    _, client = live
    with pytest.raises(gexc.NotFound):
        await client.create_task(parent=f"{PARENT}/queues/nope", task=_task())
    with pytest.raises(gexc.NotFound):
        await client.get_task(name=f"{PARENT}/queues/nope/tasks/t")


async def test_list_and_delete_tasks(live: Started) -> None:
    _, client = live
    await _paused_queue(client)
    names = [
        (await client.create_task(parent=QUEUE, task=_task(name=f"{QUEUE}/tasks/t{i}"))).name
        for i in range(5)
    ]
    listed = [
        t.name
        async for t in await client.list_tasks(request=tasks_v2.ListTasksRequest(parent=QUEUE, page_size=2))
    ]
    assert sorted(listed) == names
    await client.delete_task(name=names[0])
    with pytest.raises(gexc.NotFound):
        await client.delete_task(name=names[0])
    assert len([t async for t in await client.list_tasks(parent=QUEUE)]) == 4


async def test_run_task_dispatches_now_even_on_a_paused_queue(
    live: Started, target: RecordingHttpServer
) -> None:
    service, client = live
    await _paused_queue(client)
    future = timestamp_pb2.Timestamp(seconds=int(service.state.clock.now() + 3600))
    task = await client.create_task(
        parent=QUEUE,
        task=tasks_v2.Task(http_request=tasks_v2.HttpRequest(url=target.url("/run")), schedule_time=future),
    )
    await client.run_task(name=task.name)
    await eventually_async(lambda: len(target.requests) == 1, what="the forced dispatch")
    assert target.requests[0].path == "/run"
    await eventually_async(
        lambda: task.name not in service.state.queues[QUEUE].tasks, what="the task to be deleted"
    )
