"""The BigQuery emulator driven by the unmodified google-cloud-bigquery client, and where the local cloud
puts it."""

from __future__ import annotations

import asyncio
import datetime

import pytest
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials

from localcloud.bigquery.server import BigQueryService
from localcloud.config import LocalCloudConfig

from .conftest import PROJECT

bigquery = pytest.importorskip("google.cloud.bigquery")


def _round_trip(url: str) -> None:
    client = bigquery.Client(
        project=PROJECT, credentials=AnonymousCredentials(), client_options={"api_endpoint": url}
    )
    dataset = bigquery.Dataset(f"{PROJECT}.samples")
    dataset.location = "US"
    client.create_dataset(dataset)
    with pytest.raises(gexc.Conflict):
        client.create_dataset(dataset)
    schema = [
        bigquery.SchemaField("data", "STRING", mode="REQUIRED"),
        bigquery.SchemaField("publish_time", "TIMESTAMP", mode="REQUIRED"),
        bigquery.SchemaField("n", "INTEGER"),
    ]
    table = client.create_table(bigquery.Table(f"{PROJECT}.samples.events", schema=schema))
    assert [(f.name, f.field_type, f.mode) for f in client.get_table(table).schema] == [
        ("data", "STRING", "REQUIRED"),
        ("publish_time", "TIMESTAMP", "REQUIRED"),
        ("n", "INTEGER", "NULLABLE"),
    ]
    at = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.UTC)
    assert client.insert_rows(table, [{"data": "hello", "publish_time": at, "n": 7}]) == []
    errors = client.insert_rows(table, [{"n": 1}])
    assert errors and errors[0]["errors"][0]["reason"] == "invalid"
    rows = list(client.list_rows(table))
    assert [(r["data"], r["publish_time"], r["n"]) for r in rows] == [("hello", at, 7)]
    assert [t.table_id for t in client.list_tables("samples")] == ["events"]
    client.delete_dataset("samples", delete_contents=True)
    with pytest.raises(gexc.NotFound):
        client.get_table(f"{PROJECT}.samples.events")
    client.close()


async def test_the_client_creates_writes_reads_and_deletes(bigquery: BigQueryService) -> None:
    await asyncio.to_thread(_round_trip, bigquery.url)


def test_the_address_is_the_variable_or_beside_pubsub() -> None:
    assert LocalCloudConfig.from_env({}).bigquery == "127.0.0.1:8093"
    assert (
        LocalCloudConfig.from_env({"BIGQUERY_EMULATOR_HOST": "http://127.0.0.1:9/"}).bigquery == "127.0.0.1:9"
    )
    moved = LocalCloudConfig.from_env({"PUBSUB_EMULATOR_HOST": "127.0.0.2:4000"})
    assert moved.bigquery == "127.0.0.2:0"  # a free port: the default could be another local cloud's
    assert "BIGQUERY_EMULATOR_HOST" not in moved.client_environment()
    assert (
        LocalCloudConfig.from_env({}).client_environment()["BIGQUERY_EMULATOR_HOST"]
        == "http://127.0.0.1:8093"
    )
