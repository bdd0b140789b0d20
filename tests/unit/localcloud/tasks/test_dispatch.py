"""The dispatcher against real HTTP servers on 127.0.0.1; time-dependent behaviour driven by ManualClock."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable

import google.auth.transport.requests
import pytest
from google.cloud import tasks_v2
from google.oauth2 import id_token
from google.protobuf import duration_pb2, timestamp_pb2
from google.rpc import code_pb2

from localcloud.auth import TokenAuthority
from localcloud.clock import ManualClock
from localcloud.config import LocalCloudConfig
from localcloud.metadata.server import start as start_metadata
from localcloud.runtime import Context
from localcloud.tasks.server import CloudTasksService
from tests.support.eventually import eventually_async
from tests.support.http import RecordingHttpServer, ScriptedResponse

from .conftest import advance_to_next_due, settle

PARENT = "projects/local-project/locations/us-central1"
QUEUE = f"{PARENT}/queues/saga-tasks"
Started = tuple[CloudTasksService, tasks_v2.CloudTasksAsyncClient]
Starter = Callable[..., Awaitable[Started]]


def _seconds(value: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(int(value * 1e9))
    return duration


def _retry(
    max_attempts: int = 100,
    min_backoff: float = 10,
    max_backoff: float = 300,
    max_doublings: int = 3,
    max_retry_duration: float = 0,
) -> tasks_v2.RetryConfig:
    return tasks_v2.RetryConfig(
        max_attempts=max_attempts,
        min_backoff=_seconds(min_backoff),
        max_backoff=_seconds(max_backoff),
        max_doublings=max_doublings,
        max_retry_duration=_seconds(max_retry_duration),
    )


async def _queue(client: tasks_v2.CloudTasksAsyncClient, **fields: object) -> None:
    await client.create_queue(parent=PARENT, queue=tasks_v2.Queue(name=QUEUE, **fields))


async def _create(client: tasks_v2.CloudTasksAsyncClient, url: str, **fields: object) -> tasks_v2.Task:
    request = fields.pop("http_request", None) or tasks_v2.HttpRequest(url=url)
    return await client.create_task(parent=QUEUE, task=tasks_v2.Task(http_request=request, **fields))


async def _attempts(
    service: CloudTasksService, clock: ManualClock, target: RecordingHttpServer, count: int
) -> None:
    """Advance the clock wake-up by wake-up until ``target`` has seen ``count`` requests."""
    for _ in range(count * 3):
        await eventually_async(
            lambda: service.dispatcher.attempts_in_flight == 0 or len(target.requests) >= count
        )
        if len(target.requests) >= count:
            await settle(service.dispatcher, clock)
            return
        await advance_to_next_due(service.dispatcher, clock)
    raise AssertionError(f"only {len(target.requests)} of {count} attempts arrived")


def _gaps(target: RecordingHttpServer) -> list[float]:
    times = [r.at for r in target.requests]
    return [round(b - a, 6) for a, b in itertools.pairwise(times)]


async def test_retry_schedule_follows_the_documented_example_exactly(
    manual: Started, manual_clock: ManualClock, manual_target: RecordingHttpServer
) -> None:
    service, client = manual
    await _queue(client, retry_config=_retry(max_attempts=20))
    manual_target.script_default(*[503] * 8, 200)
    await _create(client, manual_target.url())
    await _attempts(service, manual_clock, manual_target, 9)
    assert _gaps(manual_target) == [10, 20, 40, 80, 160, 240, 300, 300]
    await eventually_async(
        lambda: not service.state.queues[QUEUE].tasks, what="the task to be deleted after its 2xx"
    )


async def test_retry_after_on_503_lengthens_the_backoff(
    manual: Started, manual_clock: ManualClock, manual_target: RecordingHttpServer
) -> None:
    service, client = manual
    await _queue(client, retry_config=_retry())
    retry_after = (("Retry-After", "45"),)
    manual_target.script_default(
        ScriptedResponse(503, headers=retry_after), ScriptedResponse(headers=retry_after)
    )
    await _create(client, manual_target.url())
    await _attempts(service, manual_clock, manual_target, 2)
    assert _gaps(manual_target) == [45]


async def test_headers_count_retries_and_executions_over_503_404_200(
    manual: Started, manual_clock: ManualClock, manual_target: RecordingHttpServer
) -> None:
    service, client = manual
    await _queue(client, retry_config=_retry(min_backoff=1, max_backoff=1))
    manual_target.script_default(503, 404, 200)
    task = await _create(client, manual_target.url("/step"))
    await _attempts(service, manual_clock, manual_target, 3)
    headers = [r.headers for r in manual_target.requests]
    assert [h["X-CloudTasks-TaskRetryCount"] for h in headers] == ["0", "1", "2"]
    assert [h["X-CloudTasks-TaskExecutionCount"] for h in headers] == ["0", "0", "1"]
    assert [h.get("X-CloudTasks-TaskPreviousResponse") for h in headers] == [None, "503", "404"]
    assert [h.get("X-CloudTasks-TaskRetryReason") for h in headers] == [None, "", ""]
    assert {h["X-CloudTasks-QueueName"] for h in headers} == {"saga-tasks"}
    assert {h["X-CloudTasks-TaskName"] for h in headers} == {task.name.rsplit("/", 1)[1]}
    assert {h["User-Agent"] for h in headers} == {"Google-Cloud-Tasks"}
    etas = [float(h["X-CloudTasks-TaskETA"]) for h in headers]
    assert etas == pytest.approx([r.at for r in manual_target.requests])
    assert all("Content-Type" not in h for h in headers)
    assert [r.method for r in manual_target.requests] == ["POST"] * 3


async def test_task_counters_and_last_attempt_are_kept_up_to_date(
    manual: Started, manual_clock: ManualClock, manual_target: RecordingHttpServer
) -> None:
    service, client = manual
    await _queue(client, retry_config=_retry())
    manual_target.script_default(404, 503, 200)
    task = await _create(client, manual_target.url())
    await _attempts(service, manual_clock, manual_target, 2)
    current = await client.get_task(name=task.name)
    assert current.dispatch_count == 2
    assert current.response_count == 2
    assert current.last_attempt.response_status.code == code_pb2.UNAVAILABLE
    assert current.first_attempt.dispatch_time.timestamp() == pytest.approx(manual_target.requests[0].at)
    assert current.schedule_time.timestamp() == pytest.approx(manual_target.requests[1].at + 20)


async def test_attempt_limit_deletes_the_task_when_duration_is_unlimited(
    manual: Started, manual_clock: ManualClock, manual_target: RecordingHttpServer
) -> None:
    service, client = manual
    await _queue(client, retry_config=_retry(max_attempts=3))
    manual_target.script_default(500)
    await _create(client, manual_target.url())
    await _attempts(service, manual_clock, manual_target, 3)
    await eventually_async(
        lambda: not service.state.queues[QUEUE].tasks, what="the exhausted task to be deleted"
    )
    assert service.dispatcher.sleeping_until is None
    assert len(manual_target.requests) == 3


async def test_retrying_continues_until_both_attempts_and_duration_are_spent(
    manual: Started, manual_clock: ManualClock, manual_target: RecordingHttpServer
) -> None:
    service, client = manual
    await _queue(
        client, retry_config=_retry(max_attempts=2, min_backoff=10, max_backoff=10, max_retry_duration=100)
    )
    manual_target.script_default(500)
    await _create(client, manual_target.url())
    await _attempts(service, manual_clock, manual_target, 11)
    await eventually_async(lambda: not service.state.queues[QUEUE].tasks, what="the task to be dropped")
    assert _gaps(manual_target) == [10] * 10
    assert manual_target.requests[-1].at - manual_target.requests[0].at == 100


async def test_unlimited_attempts_keep_retrying(
    manual: Started, manual_clock: ManualClock, manual_target: RecordingHttpServer
) -> None:
    service, client = manual
    await _queue(client, retry_config=_retry(max_attempts=-1, min_backoff=1, max_backoff=2))
    manual_target.script_default(500)
    await _create(client, manual_target.url())
    await _attempts(service, manual_clock, manual_target, 25)
    assert len(service.state.queues[QUEUE].tasks) == 1
    assert service.dispatcher.sleeping_until is not None


async def test_no_response_within_the_dispatch_deadline_is_a_failed_attempt(
    manual: Started, manual_clock: ManualClock, manual_target: RecordingHttpServer
) -> None:
    service, client = manual
    await _queue(client, retry_config=_retry(min_backoff=5, max_backoff=5))
    manual_target.hold()
    task = await _create(client, manual_target.url(), dispatch_deadline=_seconds(15))
    await eventually_async(lambda: len(manual_target.requests) == 1)
    await eventually_async(
        lambda: manual_clock.next_deadline() == manual_target.requests[0].at + 15, what="the deadline timer"
    )
    await manual_clock.advance(15)
    await eventually_async(lambda: service.dispatcher.attempts_in_flight == 0, what="the attempt to time out")
    current = await client.get_task(name=task.name)
    assert current.last_attempt.response_status.code == code_pb2.DEADLINE_EXCEEDED
    assert current.response_count == 0 and current.dispatch_count == 1
    manual_target.release()
    await advance_to_next_due(service.dispatcher, manual_clock)
    await eventually_async(lambda: len(manual_target.requests) == 2)
    second = manual_target.requests[1]
    assert second.at - manual_target.requests[0].at == 20
    assert second.headers["X-CloudTasks-TaskRetryCount"] == "1"
    assert second.headers["X-CloudTasks-TaskExecutionCount"] == "0"
    assert "X-CloudTasks-TaskPreviousResponse" not in second.headers


async def test_schedule_time_is_honoured(
    manual: Started, manual_clock: ManualClock, manual_target: RecordingHttpServer
) -> None:
    service, client = manual
    await _queue(client)
    start = manual_clock.now()
    eta = timestamp_pb2.Timestamp()
    eta.FromNanoseconds(int((start + 60.5) * 1e9))
    await _create(client, manual_target.url(), schedule_time=eta)
    await settle(service.dispatcher, manual_clock)
    await manual_clock.advance(60)
    await settle(service.dispatcher, manual_clock)
    assert manual_target.requests == []
    await manual_clock.advance(0.5)
    await eventually_async(lambda: len(manual_target.requests) == 1)
    assert manual_target.requests[0].at == pytest.approx(start + 60.5)
    assert float(manual_target.requests[0].headers["X-CloudTasks-TaskETA"]) == pytest.approx(start + 60.5)


async def test_on_the_system_clock_no_response_within_the_dispatch_deadline_is_a_failed_attempt(
    live: Started, target: RecordingHttpServer
) -> None:
    service, client = live
    await _queue(client, retry_config=_retry(min_backoff=3600, max_backoff=3600))
    await client.pause_queue(name=QUEUE)
    target.hold()
    task = await _create(client, target.url(), dispatch_deadline=_seconds(15))
    # The API allows no deadline under 15 s; shorten the stored one so the real timer fires quickly.
    service.state.queues[QUEUE].tasks[task.name].message.dispatch_deadline.CopyFrom(_seconds(0.2))
    await client.resume_queue(name=QUEUE)
    await eventually_async(lambda: len(target.requests) == 1)
    await eventually_async(lambda: service.dispatcher.attempts_in_flight == 0, what="the attempt to time out")
    current = await client.get_task(name=task.name)
    assert current.last_attempt.response_status.code == code_pb2.DEADLINE_EXCEEDED
    assert current.response_count == 0 and current.dispatch_count == 1
    target.release()


async def test_paused_queue_holds_tasks_until_resumed(
    manual: Started, manual_clock: ManualClock, manual_target: RecordingHttpServer
) -> None:
    service, client = manual
    await _queue(client)
    await client.pause_queue(name=QUEUE)
    await _create(client, manual_target.url())
    await manual_clock.advance(3600)
    await settle(service.dispatcher, manual_clock)
    assert manual_target.requests == []
    await client.resume_queue(name=QUEUE)
    await eventually_async(lambda: len(manual_target.requests) == 1)


async def test_dispatch_rate_is_limited_by_the_token_bucket(
    manual: Started, manual_clock: ManualClock, manual_target: RecordingHttpServer
) -> None:
    service, client = manual
    await _queue(client, rate_limits=tasks_v2.RateLimits(max_dispatches_per_second=2))
    start = manual_clock.now()
    for _ in range(6):
        await _create(client, manual_target.url())
    await _attempts(service, manual_clock, manual_target, 6)
    offsets = sorted(round(r.at - start, 6) for r in manual_target.requests)
    assert offsets == [0, 0, 0.5, 1.0, 1.5, 2.0]


async def test_concurrent_dispatches_are_capped(live: Started, target: RecordingHttpServer) -> None:
    service, client = live
    await _queue(client, rate_limits=tasks_v2.RateLimits(max_concurrent_dispatches=2))
    target.hold()
    for _ in range(5):
        await _create(client, target.url())
    await eventually_async(lambda: len(target.requests) == 2, what="two dispatches")
    assert service.state.queues[QUEUE].in_flight == 2
    target.release()
    await eventually_async(lambda: len(target.requests) == 5 and not service.state.queues[QUEUE].tasks)
    assert target.max_in_flight == 2


async def test_oidc_token_verifies_with_google_auth_against_the_published_certificates(
    live: Started, target: RecordingHttpServer, authority: TokenAuthority
) -> None:
    _service, client = live
    metadata = await start_metadata(
        Context(config=LocalCloudConfig.from_env({"GCE_METADATA_HOST": "127.0.0.1:0"}), authority=authority)
    )
    try:
        await _queue(client)
        invoker = "tasks-invoker@local-project.iam.gserviceaccount.com"
        await _create(
            client,
            "",
            http_request=tasks_v2.HttpRequest(
                url=target.url("/step"),
                headers={"Authorization": "Bearer user-supplied", "Content-Type": "application/json"},
                body=b"{}",
                oidc_token=tasks_v2.OidcToken(
                    service_account_email=invoker, audience="https://step-executor"
                ),
            ),
        )
        await _create(
            client,
            "",
            http_request=tasks_v2.HttpRequest(
                url=target.url("/default-audience"),
                oidc_token=tasks_v2.OidcToken(service_account_email=invoker),
            ),
        )
        await eventually_async(lambda: len(target.requests) == 2)
        by_path = {r.path: r for r in target.requests}
        certs_url = f"http://{metadata.address}/oauth2/v1/certs"

        def verify(token: str, audience: str) -> dict[str, object]:
            request = google.auth.transport.requests.Request()
            return dict(id_token.verify_token(token, request, audience=audience, certs_url=certs_url))

        step = by_path["/step"]
        assert step.headers["Content-Type"] == "application/json"
        claims = await asyncio.to_thread(
            verify, step.headers["Authorization"].removeprefix("Bearer "), "https://step-executor"
        )
        assert claims["email"] == invoker
        default = by_path["/default-audience"].headers["Authorization"].removeprefix("Bearer ")
        claims = await asyncio.to_thread(verify, default, target.url("/default-audience"))
        assert claims["aud"] == target.url("/default-audience")
    finally:
        await metadata.stop()


async def test_oauth_token_is_an_access_token_of_the_authority(
    live: Started, target: RecordingHttpServer, authority: TokenAuthority
) -> None:
    _, client = live
    await _queue(client)
    await _create(
        client,
        "",
        http_request=tasks_v2.HttpRequest(
            url=target.url(),
            oauth_token=tasks_v2.OAuthToken(service_account_email="sa@local-project.iam.gserviceaccount.com"),
        ),
    )
    await eventually_async(lambda: len(target.requests) == 1)
    record = authority.check_authorization_header(target.requests[0].headers["Authorization"])
    assert record is not None and record.service_account_email == "sa@local-project.iam.gserviceaccount.com"


async def test_methods_headers_and_body_reach_the_target(live: Started, target: RecordingHttpServer) -> None:
    _, client = live
    await _queue(client)
    await _create(
        client,
        "",
        http_request=tasks_v2.HttpRequest(
            url=target.url("/put?x=1"),
            http_method=tasks_v2.HttpMethod.PUT,
            headers={"X-Custom": "yes", "User-Agent": "mine", "X-Google-Secret": "no"},
            body=b"payload",
        ),
    )
    await _create(
        client,
        "",
        http_request=tasks_v2.HttpRequest(url=target.url("/get"), http_method=tasks_v2.HttpMethod.GET),
    )
    await eventually_async(lambda: len(target.requests) == 2)
    by_path = {r.path: r for r in target.requests}
    put = by_path["/put?x=1"]
    assert put.method == "PUT" and put.body == b"payload"
    assert put.headers["X-Custom"] == "yes" and put.headers["User-Agent"] == "Google-Cloud-Tasks"
    assert "X-Google-Secret" not in put.headers
    assert by_path["/get"].method == "GET"


async def test_unreachable_target_is_a_failed_attempt(manual: Started, manual_clock: ManualClock) -> None:
    service, client = manual
    await _queue(client, retry_config=_retry())
    task = await _create(client, "http://127.0.0.1:9/closed")
    await eventually_async(
        lambda: (
            service.state.queues[QUEUE].tasks[task.name].message.dispatch_count == 1
            and service.dispatcher.attempts_in_flight == 0
        )
    )
    current = await client.get_task(name=task.name)
    assert current.response_count == 0
    assert current.last_attempt.response_status.code == code_pb2.UNAVAILABLE
    assert current.schedule_time.timestamp() == pytest.approx(manual_clock.now() + 10)


async def test_150_tasks_are_dispatched_within_milliseconds(
    live: Started, target: RecordingHttpServer
) -> None:
    service, client = live
    await _queue(client)
    started = time.monotonic()
    await asyncio.gather(*(_create(client, target.url(f"/t{i}")) for i in range(150)))
    await eventually_async(lambda: len(target.requests) == 150, timeout=10, what="all dispatches")
    elapsed = time.monotonic() - started
    assert elapsed < 3.0
    assert len({r.path for r in target.requests}) == 150
    await eventually_async(lambda: not service.state.queues[QUEUE].tasks)
    latency_start = time.monotonic()
    await _create(client, target.url("/single"))
    await eventually_async(lambda: len(target.requests) == 151)
    assert time.monotonic() - latency_start < 0.25


async def test_a_task_retry_config_overrides_the_queue_one(
    manual: Started, manual_clock: ManualClock, manual_target: RecordingHttpServer
) -> None:
    service, client = manual
    await _queue(client, retry_config=_retry(max_attempts=50))
    manual_target.script_default(500)
    await _create(
        client, manual_target.url(), retry_config=_retry(max_attempts=2, min_backoff=7, max_backoff=7)
    )
    await _attempts(service, manual_clock, manual_target, 2)
    await eventually_async(lambda: not service.state.queues[QUEUE].tasks, what="the task to be dropped")
    assert _gaps(manual_target) == [7]


async def test_deleting_a_task_in_flight_discards_its_outcome(
    live: Started, target: RecordingHttpServer
) -> None:
    service, client = live
    await _queue(client)
    target.hold()
    target.script_default(500, 200)
    task = await _create(client, target.url())
    await eventually_async(lambda: len(target.requests) == 1)
    await client.delete_task(name=task.name)
    target.release()
    await eventually_async(lambda: service.dispatcher.attempts_in_flight == 0 and service.dispatcher.idle)
    assert service.dispatcher.sleeping_until is None
    assert len(target.requests) == 1


async def test_concurrency_cap_holds_when_many_tasks_fall_due_together(
    manual: Started, manual_clock: ManualClock, manual_target: RecordingHttpServer
) -> None:
    service, client = manual
    await _queue(client, rate_limits=tasks_v2.RateLimits(max_concurrent_dispatches=2))
    manual_target.hold()
    eta = timestamp_pb2.Timestamp()
    eta.FromNanoseconds(int((manual_clock.now() + 30) * 1e9))
    for _ in range(5):
        await _create(client, manual_target.url(), schedule_time=eta)
    await advance_to_next_due(service.dispatcher, manual_clock)
    await eventually_async(lambda: len(manual_target.requests) == 2 and service.dispatcher.idle)
    assert service.dispatcher.attempts_in_flight == 2
    manual_target.release()
    await eventually_async(lambda: len(manual_target.requests) == 5 and not service.state.queues[QUEUE].tasks)
    assert manual_target.max_in_flight == 2
