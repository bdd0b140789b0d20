"""BigQuery subscriptions: refused without a fitting table, their messages written as rows of it through the
BigQuery emulator's REST API, and retried when a write fails."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1

from localcloud.auth import TokenAuthority
from localcloud.bigquery.server import BigQueryService
from localcloud.bigquery.server import start as start_bigquery
from localcloud.config import LocalCloudConfig
from localcloud.pubsub.server import start as start_pubsub
from localcloud.runtime import Context
from tests.support.eventually import eventually_async

from .conftest import Local, call

SAMPLE_SCHEMA = [  # the table python-pubsub's sample creates for its BigQuery subscription
    {"name": "data", "type": "STRING", "mode": "REQUIRED"},
    {"name": "message_id", "type": "STRING", "mode": "REQUIRED"},
    {"name": "attributes", "type": "STRING", "mode": "REQUIRED"},
    {"name": "subscription_name", "type": "STRING", "mode": "REQUIRED"},
    {"name": "publish_time", "type": "TIMESTAMP", "mode": "REQUIRED"},
]
FAST_RETRY = {
    "minimum_backoff": {"seconds": 0, "nanos": 50_000_000},
    "maximum_backoff": {"seconds": 0, "nanos": 100_000_000},
}


@pytest.fixture
async def cloud(
    authority: TokenAuthority, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Local, BigQueryService]]:
    """Both emulators, in one context as ``localcloud serve`` starts them: BigQuery first."""
    config = LocalCloudConfig.from_env({"PUBSUB_EMULATOR_HOST": "127.0.0.1:0"})
    ctx = Context(config=config, authority=authority)
    bigquery = await start_bigquery(ctx)
    service = await start_pubsub(ctx)
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", service.address)
    local = Local(service, pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient())
    yield local, bigquery
    local.subscriber.close()
    await service.stop()
    await bigquery.stop()


def _table(bigquery: BigQueryService, table: str, fields: list[dict[str, Any]], dataset: str = "ds") -> str:
    state = bigquery.state
    try:
        state.dataset("p", dataset)
    except gexc.NotFound:
        state.insert_dataset("p", {"datasetReference": {"datasetId": dataset}})
    state.insert_table("p", dataset, {"tableReference": {"tableId": table}, "schema": {"fields": fields}})
    return f"p.{dataset}.{table}"


async def _subscribe(local: Local, name: str, **extra: Any) -> tuple[str, str, Any]:
    topic, sub = local.topic(f"topic-{name}"), local.subscription(f"sub-{name}")
    await call(local.publisher.create_topic, name=topic)
    created = await call(local.subscriber.create_subscription, request={"name": sub, "topic": topic, **extra})
    return topic, sub, created


async def test_creation_is_refused_without_a_fitting_table(cloud: tuple[Local, BigQueryService]) -> None:
    local, bigquery = cloud
    with pytest.raises(gexc.NotFound):
        await _subscribe(local, "none", bigquery_config={"table": "p.ds.missing"})
    _table(bigquery, "no_data", [{"name": "payload", "type": "STRING"}])
    with pytest.raises(gexc.InvalidArgument, match="no data column"):
        await _subscribe(local, "no-data", bigquery_config={"table": "p.ds.no_data"})
    _table(bigquery, "only_data", [{"name": "data", "type": "BYTES"}])
    with pytest.raises(gexc.InvalidArgument, match="no message_id column"):
        await _subscribe(
            local, "metadata", bigquery_config={"table": "p.ds.only_data", "write_metadata": True}
        )
    with pytest.raises(gexc.MethodNotImplemented, match="use_topic_schema"):
        await _subscribe(
            local, "schema", bigquery_config={"table": "p.ds.only_data", "use_topic_schema": True}
        )
    with pytest.raises(gexc.InvalidArgument, match=r"projectId\.datasetId\.tableId"):
        await _subscribe(local, "form", bigquery_config={"table": "only_data"})
    assert not local.service.state.subscriptions


async def test_published_messages_land_as_rows(cloud: tuple[Local, BigQueryService]) -> None:
    local, bigquery = cloud
    table = _table(bigquery, "events", SAMPLE_SCHEMA)
    config = {"table": table, "write_metadata": True}
    topic, sub, created = await _subscribe(local, "rows", bigquery_config=config)
    assert created.bigquery_config.state == created.bigquery_config.State.ACTIVE
    futures = [
        await call(local.publisher.publish, topic, b"first", kind="order"),
        await call(local.publisher.publish, topic, b"second"),
    ]
    ids = [await call(future.result, 10) for future in futures]
    rows = bigquery.state.table("p", "ds", "events").rows
    await eventually_async(lambda: len(rows) == 2, what="two rows")
    by_id = {row["message_id"]: row for row in rows}
    assert by_id[ids[0]]["data"] == "first" and by_id[ids[1]]["data"] == "second"
    assert json.loads(by_id[ids[0]]["attributes"]) == {"kind": "order"}
    assert json.loads(by_id[ids[1]]["attributes"]) == {}
    assert {row["subscription_name"] for row in rows} == {sub}
    assert all(isinstance(row["publish_time"], int) and row["publish_time"] > 0 for row in rows)
    await eventually_async(lambda: not local.service.state.subscriptions[sub].entries, what="acked")


async def test_without_metadata_only_data_is_written_bytes_as_base64(
    cloud: tuple[Local, BigQueryService],
) -> None:
    local, bigquery = cloud
    table = _table(bigquery, "raw", [{"name": "data", "type": "BYTES"}, {"name": "note", "type": "STRING"}])
    topic, _, _ = await _subscribe(local, "raw", bigquery_config={"table": table})
    await call((await call(local.publisher.publish, topic, b"\x00\xff")).result, 10)
    rows = bigquery.state.table("p", "ds", "raw").rows
    await eventually_async(lambda: rows, what="a row")
    assert rows == [{"data": base64.b64encode(b"\x00\xff").decode(), "note": None}]


async def test_a_failed_write_is_retried_until_the_table_is_back(
    cloud: tuple[Local, BigQueryService],
) -> None:
    local, bigquery = cloud
    table = _table(bigquery, "flaky", [{"name": "data", "type": "STRING"}])
    topic, sub, _ = await _subscribe(
        local, "flaky", bigquery_config={"table": table}, retry_policy=FAST_RETRY
    )
    bigquery.state.delete_table("p", "ds", "flaky")
    await call((await call(local.publisher.publish, topic, b"kept")).result, 10)
    state = local.service.state.subscriptions[sub]
    await eventually_async(lambda: any(e.attempts >= 2 for e in state.entries), what="two failed writes")
    got = await call(local.subscriber.get_subscription, subscription=sub)
    assert got.bigquery_config.state == got.bigquery_config.State.NOT_FOUND
    _table(bigquery, "flaky", [{"name": "data", "type": "STRING"}])
    rows = bigquery.state.table("p", "ds", "flaky").rows
    await eventually_async(lambda: rows == [{"data": "kept"}], what="the row written on a retry")
    await eventually_async(lambda: not state.entries, what="acked")
    got = await call(local.subscriber.get_subscription, subscription=sub)
    assert got.bigquery_config.state == got.bigquery_config.State.ACTIVE


async def test_a_row_bigquery_refuses_is_nacked_and_redelivered(cloud: tuple[Local, BigQueryService]) -> None:
    local, bigquery = cloud
    table = _table(bigquery, "text", [{"name": "data", "type": "STRING"}])
    topic, sub, _ = await _subscribe(local, "text", bigquery_config={"table": table}, retry_policy=FAST_RETRY)
    await call((await call(local.publisher.publish, topic, b"\xff not utf-8")).result, 10)
    await call((await call(local.publisher.publish, topic, b"fine")).result, 10)
    state = local.service.state.subscriptions[sub]
    rows = bigquery.state.table("p", "ds", "text").rows
    await eventually_async(lambda: any(e.attempts >= 3 for e in state.entries), what="redeliveries")
    assert rows == [{"data": "fine"}]
    assert [e.stored.message.data for e in state.entries] == [b"\xff not utf-8"]


async def test_a_row_in_insert_errors_is_nacked_and_the_rest_of_the_batch_acked(
    cloud: tuple[Local, BigQueryService],
) -> None:
    # The table is replaced after the subscription was checked: its data column is now INTEGER, so
    # BigQuery itself refuses a text row (insertErrors, skipInvalidRows) and writes a number.
    local, bigquery = cloud
    table = _table(bigquery, "swapped", [{"name": "data", "type": "STRING"}])
    topic, sub, _ = await _subscribe(
        local, "swapped", bigquery_config={"table": table}, retry_policy=FAST_RETRY
    )
    bigquery.state.delete_table("p", "ds", "swapped")
    _table(bigquery, "swapped", [{"name": "data", "type": "INTEGER"}])
    publisher = local.publisher
    futures = [await call(publisher.publish, topic, data) for data in (b"forty-two", b"42")]
    for future in futures:
        await call(future.result, 10)
    state = local.service.state.subscriptions[sub]
    rows = bigquery.state.table("p", "ds", "swapped").rows
    await eventually_async(lambda: any(e.attempts >= 3 for e in state.entries), what="redeliveries")
    assert rows == [{"data": "42"}]
    assert [e.stored.message.data for e in state.entries] == [b"forty-two"]


async def test_a_subscription_is_push_or_bigquery_not_both(cloud: tuple[Local, BigQueryService]) -> None:
    local, bigquery = cloud
    table = _table(bigquery, "both", [{"name": "data", "type": "STRING"}])
    with pytest.raises(gexc.InvalidArgument, match="cannot both be set"):
        await _subscribe(
            local,
            "both",
            bigquery_config={"table": table},
            push_config={"push_endpoint": "http://127.0.0.1:9/"},
        )


async def test_an_update_cannot_make_a_bigquery_subscription_push_too(
    cloud: tuple[Local, BigQueryService],
) -> None:
    local, bigquery = cloud
    table = _table(bigquery, "made_push", [{"name": "data", "type": "STRING"}])
    _, sub, _ = await _subscribe(local, "made-push", bigquery_config={"table": table})
    with pytest.raises(gexc.InvalidArgument, match="cannot both be set"):
        await call(
            local.subscriber.update_subscription,
            request={
                "subscription": {"name": sub, "push_config": {"push_endpoint": "http://127.0.0.1:9/"}},
                "update_mask": {"paths": ["push_config"]},
            },
        )
    kept = await call(local.subscriber.get_subscription, subscription=sub)
    assert kept.bigquery_config.table == table and not kept.push_config.push_endpoint
