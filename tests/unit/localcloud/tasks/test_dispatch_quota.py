"""Google's dispatch quota per queue (``LOCALCLOUD_QUOTAS``, ``tasks.dispatches``): over it a dispatch waits
for the next slot, as Cloud Tasks throttles a queue; no task fails or is retried for it."""

from __future__ import annotations

from google.cloud import tasks_v2

from localcloud.clock import ManualClock
from localcloud.quotas import TASKS_DISPATCHES, QuotaConfig
from localcloud.tasks.server import CloudTasksService
from tests.support.eventually import eventually_async
from tests.support.http import RecordingHttpServer

from .conftest import advance_to_next_due, settle

PARENT = "projects/local-project/locations/us-central1"
QUEUE = f"{PARENT}/queues/saga-tasks"
Started = tuple[CloudTasksService, tasks_v2.CloudTasksAsyncClient]


async def test_dispatches_over_the_quota_wait_for_the_window_and_none_fails(
    manual: Started, manual_clock: ManualClock, manual_target: RecordingHttpServer
) -> None:
    service, client = manual
    service.dispatcher.quotas.config = QuotaConfig.parse("tasks.dispatches=2/s")
    await client.create_queue(parent=PARENT, queue=tasks_v2.Queue(name=QUEUE))  # 500/s of its own
    start = manual_clock.now()
    for _ in range(6):
        await client.create_task(parent=QUEUE, task=tasks_v2.Task(http_request={"url": manual_target.url()}))
    for _ in range(10):
        await settle(service.dispatcher, manual_clock)
        if len(manual_target.requests) == 6:
            break
        await advance_to_next_due(service.dispatcher, manual_clock)
    offsets = sorted(round(r.at - start, 6) for r in manual_target.requests)
    assert offsets == [0, 0, 1, 1, 2, 2]
    assert {r.headers["X-CloudTasks-TaskRetryCount"] for r in manual_target.requests} == {"0"}
    await eventually_async(lambda: not service.state.queues[QUEUE].tasks, what="every task done")
    usage = service.dispatcher.quotas.usage()[TASKS_DISPATCHES][QUEUE]
    assert usage["calls"] == 6 and usage["refused"] == 0
