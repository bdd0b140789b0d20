"""Cloud Tasks reads a project number in a name as the project's id; answers name the project by id, the
form of Cloud Tasks' names."""

from __future__ import annotations

from google.cloud import tasks_v2

from localcloud._project import project_number
from tests.unit.localcloud.tasks.conftest import PARENT, Starter

NUMBER = project_number("local-project")
BY_NUMBER = f"projects/{NUMBER}/locations/us-central1"


async def test_a_queue_by_number_is_the_queue_of_the_id(start_tasks: Starter) -> None:
    _, client = await start_tasks()
    queue = await client.create_queue(parent=PARENT, queue=tasks_v2.Queue(name=f"{PARENT}/queues/q"))
    await client.pause_queue(name=f"{BY_NUMBER}/queues/q")
    task = await client.create_task(
        parent=f"{BY_NUMBER}/queues/q",
        task=tasks_v2.Task(
            name=f"{BY_NUMBER}/queues/q/tasks/t1",
            http_request=tasks_v2.HttpRequest(url="https://example.com/"),
        ),
    )
    assert task.name == f"{queue.name}/tasks/t1"
    got = await client.get_queue(name=f"{BY_NUMBER}/queues/q")
    assert (got.name, got.state) == (queue.name, tasks_v2.Queue.State.PAUSED)
    assert [t.name async for t in await client.list_tasks(parent=queue.name)] == [task.name]
