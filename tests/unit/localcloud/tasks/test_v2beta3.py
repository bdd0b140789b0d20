"""Cloud Tasks v2beta3 beside v2 on the same port and state, through the unmodified
``google.cloud.tasks_v2beta3`` client: queue-level routing (``http_target``) at dispatch, the calls of
Google's http_queues samples, the v2beta3-only queue fields and the errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import google.auth.transport.requests
import grpc
import pytest
from google.api_core import exceptions as gexc
from google.cloud import tasks_v2
from google.cloud import tasks_v2beta3 as beta
from google.cloud.tasks_v2beta3.services.cloud_tasks.transports import CloudTasksGrpcAsyncIOTransport
from google.oauth2 import id_token
from google.protobuf import duration_pb2, timestamp_pb2

from localcloud.auth import TokenAuthority
from localcloud.config import LocalCloudConfig
from localcloud.metadata.server import start as start_metadata
from localcloud.runtime import Context
from tests.support.eventually import eventually_async
from tests.support.http import RecordingHttpServer

from .conftest import PARENT, Started

QUEUE = f"{PARENT}/queues/http-queue"
INVOKER = "tasks-invoker@local-project.iam.gserviceaccount.com"
Both = tuple[Started, beta.CloudTasksAsyncClient]


@pytest.fixture
async def both(live: Started) -> AsyncIterator[Both]:
    """The emulator with its v2 client, and a v2beta3 client on the same port."""
    channel = grpc.aio.insecure_channel(live[0].address)
    yield live, beta.CloudTasksAsyncClient(transport=CloudTasksGrpcAsyncIOTransport(channel=channel))
    await channel.close()


def _later() -> timestamp_pb2.Timestamp:
    """An hour ahead: the task stays in its queue while the test looks at it."""
    return timestamp_pb2.Timestamp(seconds=int(time.time()) + 3600)


def _days(days: float) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=int(days * 24 * 3600))


async def test_a_task_with_only_a_body_is_sent_where_the_queue_routes_it_with_a_verifiable_oidc_token(
    both: Both, target: RecordingHttpServer, authority: TokenAuthority
) -> None:
    _, client = both
    metadata = await start_metadata(
        Context(config=LocalCloudConfig.from_env({"GCE_METADATA_HOST": "127.0.0.1:0"}), authority=authority)
    )
    try:
        await client.create_queue(
            parent=PARENT,
            queue=beta.Queue(
                name=QUEUE,
                http_target=beta.HttpTarget(
                    uri_override=beta.UriOverride(
                        scheme=beta.UriOverride.Scheme.HTTP,
                        host="127.0.0.1",
                        port=target.port,
                        path_override=beta.PathOverride(path="/inbox"),
                        query_override=beta.QueryOverride(query_params="source=queue"),
                        uri_override_enforce_mode=beta.UriOverride.UriOverrideEnforceMode.ALWAYS,
                    ),
                    header_overrides=[
                        beta.HttpTarget.HeaderOverride(
                            header=beta.HttpTarget.Header(key="Content-Type", value="application/json")
                        ),
                        beta.HttpTarget.HeaderOverride(
                            header=beta.HttpTarget.Header(key="X-Route", value="queue")
                        ),
                    ],
                    oidc_token=beta.OidcToken(service_account_email=INVOKER),
                ),
            ),
        )
        task = await client.create_task(
            parent=QUEUE,
            task=beta.Task(
                http_request=beta.HttpRequest(
                    body=b'{"order": 7}', headers={"Content-Type": "text/plain", "X-From-Task": "yes"}
                )
            ),
        )
        assert task.http_request.url == ""  # the task keeps what it was given; routing happens at dispatch

        await eventually_async(lambda: len(target.requests) == 1, what="the routed dispatch")
        sent = target.requests[0]
        assert (sent.method, sent.path, sent.body) == ("POST", "/inbox?source=queue", b'{"order": 7}')
        assert sent.headers["Content-Type"] == "application/json"
        assert (sent.headers["X-Route"], sent.headers["X-From-Task"]) == ("queue", "yes")
        assert sent.headers["X-CloudTasks-QueueName"] == "http-queue"

        def verify(token: str, audience: str) -> dict[str, object]:
            request = google.auth.transport.requests.Request()
            certs_url = f"http://{metadata.address}/oauth2/v1/certs"
            return dict(id_token.verify_token(token, request, audience=audience, certs_url=certs_url))

        token = sent.headers["Authorization"].removeprefix("Bearer ")
        claims = await asyncio.to_thread(verify, token, target.url("/inbox?source=queue"))
        assert claims["email"] == INVOKER
    finally:
        await metadata.stop()


async def test_if_not_exists_fills_only_what_the_task_url_lacks_and_always_replaces_it(
    both: Both, target: RecordingHttpServer
) -> None:
    _, client = both
    mode = beta.UriOverride.UriOverrideEnforceMode
    for queue_id, enforce in (("fill-queue", mode.IF_NOT_EXISTS), ("force-queue", mode.ALWAYS)):
        override = beta.UriOverride(
            scheme=beta.UriOverride.Scheme.HTTP,
            host="127.0.0.1",
            port=target.port,
            path_override=beta.PathOverride(path=f"/{queue_id}"),
            uri_override_enforce_mode=enforce,
        )
        name = f"{PARENT}/queues/{queue_id}"
        await client.create_queue(
            parent=PARENT, queue=beta.Queue(name=name, http_target=beta.HttpTarget(uri_override=override))
        )
        await client.create_task(parent=name, task=beta.Task(http_request=beta.HttpRequest(url="/own?x=1")))
    await eventually_async(lambda: len(target.requests) == 2, what="two routed dispatches")
    assert sorted(r.path for r in target.requests) == ["/force-queue?x=1", "/own?x=1"]


async def test_a_get_override_sends_no_body(both: Both, target: RecordingHttpServer) -> None:
    _, client = both
    await client.create_queue(
        parent=PARENT,
        queue=beta.Queue(name=QUEUE, http_target=beta.HttpTarget(http_method=beta.HttpMethod.GET)),
    )
    await client.create_task(
        parent=QUEUE, task=beta.Task(http_request=beta.HttpRequest(url=target.url("/read"), body=b"dropped"))
    )
    await eventually_async(lambda: len(target.requests) == 1)
    assert (target.requests[0].method, target.requests[0].body) == ("GET", b"")


async def test_the_http_queues_sample_calls_create_update_get_and_delete_a_queue(both: Both) -> None:
    """What cloud_tasks/http_queues in GoogleCloudPlatform/python-docs-samples sends: dicts, the mode as a
    number, the port as a string, and an update mask over http_target, rate_limits and retry_config."""
    _, client = both
    created = await client.create_queue(
        beta.CreateQueueRequest(
            parent=PARENT,
            queue={
                "name": QUEUE,
                "http_target": {
                    "uri_override": {
                        "host": "example.com",
                        "uri_override_enforce_mode": 2,
                        "scheme": beta.UriOverride.Scheme.HTTP,
                        "port": "8080",
                    }
                },
            },
        )
    )
    assert created.http_target.uri_override.port == 8080
    created.http_target = beta.HttpTarget(
        {"uri_override": {"host": "example.com", "path_override": {"path": "/somepath"}}}
    )
    created.rate_limits.max_dispatches_per_second = 5.0
    created.retry_config.max_attempts = 2
    updated = await client.update_queue(
        beta.UpdateQueueRequest(
            queue=created, update_mask={"paths": ["http_target", "rate_limits", "retry_config"]}
        )
    )
    assert updated.http_target.uri_override.scheme != beta.UriOverride.Scheme.HTTP
    assert updated.http_target.uri_override.path_override.path == "/somepath"
    assert (updated.rate_limits.max_dispatches_per_second, updated.retry_config.max_attempts) == (5.0, 2)
    assert (await client.get_queue(name=QUEUE)).http_target == updated.http_target
    await client.delete_queue(name=QUEUE)
    with pytest.raises(gexc.NotFound):
        await client.get_queue(name=QUEUE)


async def test_a_queue_created_through_v2_reads_through_v2beta3_and_changes_show_through_v2(
    both: Both,
) -> None:
    (_, v2), client = both
    await v2.create_queue(
        parent=PARENT,
        queue=tasks_v2.Queue(name=QUEUE, retry_config=tasks_v2.RetryConfig(max_attempts=5)),
    )
    read = await client.get_queue(name=QUEUE)
    assert (read.type_, read.retry_config.max_attempts) == (beta.Queue.Type.PUSH, 5)
    assert (read.task_ttl, read.tombstone_ttl) == (timedelta(days=31), timedelta(hours=1))
    assert not beta.Queue.pb(read).HasField("stats")  # only with a read mask that names it

    updated = await client.update_queue(
        queue=beta.Queue(
            name=QUEUE,
            task_ttl=_days(20),
            rate_limits=beta.RateLimits(max_dispatches_per_second=2),
            app_engine_http_queue=beta.AppEngineHttpQueue(
                app_engine_routing_override=beta.AppEngineRouting(service="worker")
            ),
        ),
        update_mask={"paths": ["task_ttl", "rate_limits.max_dispatches_per_second", "app_engine_http_queue"]},
    )
    assert updated.task_ttl == timedelta(days=20) and updated.retry_config.max_attempts == 5
    through_v2 = await v2.get_queue(name=QUEUE)
    assert through_v2.rate_limits.max_dispatches_per_second == 2
    assert through_v2.app_engine_routing_override.service == "worker"
    assert (await client.get_queue(name=QUEUE)).task_ttl == timedelta(days=20)
    assert [q.name async for q in await client.list_queues(parent=PARENT)] == [QUEUE]


async def test_tasks_cross_versions_and_stats_come_only_with_a_read_mask(both: Both) -> None:
    (_, v2), client = both
    await client.create_queue(parent=PARENT, queue=beta.Queue(name=QUEUE))
    from_beta = await client.create_task(
        parent=QUEUE,
        task=beta.Task(http_request=beta.HttpRequest(url="http://127.0.0.1:9/a"), schedule_time=_later()),
    )
    from_v2 = await v2.create_task(
        parent=QUEUE,
        task=tasks_v2.Task(
            http_request=tasks_v2.HttpRequest(url="http://127.0.0.1:9/b", body=b"x"), schedule_time=_later()
        ),
    )
    full = await client.get_task(request={"name": from_v2.name, "response_view": beta.Task.View.FULL})
    assert (full.http_request.url, full.http_request.body) == ("http://127.0.0.1:9/b", b"x")
    assert {t.name async for t in await client.list_tasks(parent=QUEUE)} == {from_beta.name, from_v2.name}
    assert (await v2.get_task(name=from_beta.name)).name == from_beta.name

    masked = await client.get_queue(request={"name": QUEUE, "read_mask": {"paths": ["stats", "state"]}})
    assert masked.stats.tasks_count == 2 and masked.stats.effective_execution_rate == 500
    assert masked.stats.oldest_estimated_arrival_time.timestamp() == pytest.approx(_later().seconds, abs=5)
    assert masked.state == beta.Queue.State.RUNNING and not masked.rate_limits.max_dispatches_per_second
    listed = await client.list_queues(request={"parent": PARENT, "read_mask": {"paths": ["stats"]}})
    assert [q.stats.tasks_count async for q in listed] == [2]
    await client.delete_task(name=from_beta.name)
    with pytest.raises(gexc.NotFound):
        await v2.get_task(name=from_beta.name)


async def test_bad_requests_are_invalid_argument_with_the_field_named(both: Both) -> None:
    _, client = both
    with pytest.raises(gexc.InvalidArgument, match=r"queue\.task_ttl must be between 10 days"):
        await client.create_queue(parent=PARENT, queue=beta.Queue(name=QUEUE, task_ttl=_days(1)))
    with pytest.raises(gexc.InvalidArgument, match=r"queue\.tombstone_ttl must be between 1 hour"):
        await client.create_queue(parent=PARENT, queue=beta.Queue(name=QUEUE, tombstone_ttl=_days(10)))
    with pytest.raises(gexc.InvalidArgument, match=r"http_target\.uri_override\.host must not be empty"):
        await client.create_queue(
            parent=PARENT,
            queue=beta.Queue(name=QUEUE, http_target=beta.HttpTarget(uri_override=beta.UriOverride(host=""))),
        )
    with pytest.raises(gexc.NotFound):
        await client.get_queue(name=QUEUE)  # nothing was created by the refused requests

    await client.create_queue(parent=PARENT, queue=beta.Queue(name=QUEUE))
    with pytest.raises(gexc.InvalidArgument, match=r"task\.http_request\.url must begin with http://"):
        await client.create_task(parent=QUEUE, task=beta.Task(http_request=beta.HttpRequest(url="/relative")))
    with pytest.raises(gexc.InvalidArgument, match=r"queue\.type is immutable"):
        await client.update_queue(
            queue=beta.Queue(name=QUEUE, type_=beta.Queue.Type.PULL), update_mask={"paths": ["type"]}
        )
    with pytest.raises(gexc.InvalidArgument, match=r"pull_message can only be used in a queue of type PULL"):
        await client.create_task(parent=QUEUE, task=beta.Task(pull_message=beta.PullMessage(payload=b"p")))
    with pytest.raises(gexc.InvalidArgument, match="unknown Queue field"):
        await client.get_queue(request={"name": QUEUE, "read_mask": {"paths": ["colour"]}})


async def test_a_pull_queue_keeps_its_type_and_takes_no_http_task(both: Both) -> None:
    (_, v2), client = both
    pull = f"{PARENT}/queues/pull-queue"
    created = await client.create_queue(
        parent=PARENT, queue=beta.Queue(name=pull, type_=beta.Queue.Type.PULL)
    )
    assert created.type_ == beta.Queue.Type.PULL
    assert (await v2.get_queue(name=pull)).name == pull
    with pytest.raises(gexc.InvalidArgument, match="PULL queue"):
        await client.create_task(parent=pull, task=beta.Task(http_request=beta.HttpRequest(url="http://h/")))
    with pytest.raises(gexc.MethodNotImplemented, match="Pull tasks are not served"):
        await client.create_task(parent=pull, task=beta.Task(pull_message=beta.PullMessage(payload=b"p")))
