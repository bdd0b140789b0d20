"""BigQuery subscriptions: each message of a subscription with ``bigquery_config.table`` is written as a row
of that table, through the BigQuery emulator's REST API (``tabledata.insertAll``), over HTTP: the Pub/Sub
emulator imports nothing of it and learns where it is from ``LocalCloudConfig.bigquery``
(``BIGQUERY_EMULATOR_HOST``), as push learns its endpoints from the subscription.

Behaviour (https://cloud.google.com/pubsub/docs/bigquery, and ``BigQueryConfig`` in google/pubsub/v1/pubsub.proto):

- On create (and on an update of ``bigquery_config``) the table, ``{project}.{dataset}.{table}`` or the older
  ``{project}:{dataset}.{table}``, must exist (``tables.get``; else NOT_FOUND) and fit what will be written:
  a ``data`` column (``STRING``, ``BYTES`` or ``JSON``), and with ``write_metadata`` the columns
  ``subscription_name`` (``STRING``), ``message_id`` (``STRING``), ``publish_time`` (``TIMESTAMP``) and
  ``attributes`` (``STRING`` or ``JSON``); no other column may be ``REQUIRED`` (else INVALID_ARGUMENT). The
  subscription's ``bigquery_config.state`` is then ``ACTIVE``. A subscription is of one kind: push and
  BigQuery together are INVALID_ARGUMENT.
- ``use_topic_schema`` and ``use_table_schema`` (columns taken from the message's fields) are not
  emulated: such a subscription is refused with UNIMPLEMENTED rather than written wrongly.
- Delivery: messages are written in batches (one ``insertAll`` of at most ``MAX_ROWS_IN_FLIGHT`` rows,
  ``skipInvalidRows`` set, each row's ``insertId`` the subscription and message id, so a retried write
  is not doubled). A written row acks its message; a row BigQuery refuses, an HTTP error, a connection
  error or no answer within the ack deadline nacks it, and it is redelivered after the subscription's
  backoff (or dead-lettered), as for push. ``data`` goes in as text (``STRING``, ``JSON``; data that is not
  UTF-8 is refused for such a column) or base64 (``BYTES``); ``attributes`` as a JSON object. A table that
  has gone makes ``bigquery_config.state`` ``NOT_FOUND`` until a write succeeds again.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from typing import Any

import aiohttp
from google.api_core import exceptions as gexc
from google.pubsub_v1.types import pubsub

from localcloud.pubsub.outbound import Outbound, OutboundConsumer
from localcloud.pubsub.records import Lease, SubscriptionState
from localcloud.pubsub.state import PubSubState

log = logging.getLogger("localcloud.pubsub.bigquery")

MAX_ROWS_IN_FLIGHT = 500  # per subscription; also insertAll's recommended batch size
TABLE = re.compile(r"^(?P<project>[^.:]+(?::[^.:]+)?)[.:](?P<dataset>[A-Za-z0-9_]+)\.(?P<table>[^.]+)$")
DATA_TYPES = frozenset({"STRING", "BYTES", "JSON"})
METADATA_COLUMNS = {
    "subscription_name": frozenset({"STRING"}),
    "message_id": frozenset({"STRING"}),
    "publish_time": frozenset({"TIMESTAMP"}),
    "attributes": frozenset({"STRING", "JSON"}),
}
ACTIVE = pubsub.BigQueryConfig.State.ACTIVE
NOT_FOUND = pubsub.BigQueryConfig.State.NOT_FOUND


def table_parts(table: str) -> tuple[str, str, str]:
    """``(project, dataset, table)`` of ``bigquery_config.table``."""
    match = TABLE.match(table)
    if match is None:
        raise gexc.InvalidArgument(
            f"Invalid [bigquery_config.table] {table!r}: must be of the form projectId.datasetId.tableId"
        )
    return match["project"], match["dataset"], match["table"]


def schema_problems(config: Any, fields: list[dict[str, Any]]) -> list[str]:
    """Why rows of this subscription could not be written to a table with these columns."""
    types = {str(f.get("name", "")): str(f.get("type", "")).upper() for f in fields}
    wanted = {"data": DATA_TYPES} | (METADATA_COLUMNS if config.write_metadata else {})
    problems = []
    for column, allowed in wanted.items():
        if column not in types:
            problems.append(f"the table has no {column} column")
        elif types[column] not in allowed:
            problems.append(f"column {column} is {types[column]}, not {' or '.join(sorted(allowed))}")
    for field in fields:
        if str(field.get("mode", "")).upper() == "REQUIRED" and field.get("name") not in wanted:
            problems.append(f"column {field.get('name')} is REQUIRED but nothing is written to it")
    return problems


class BigQueryConsumer(OutboundConsumer):
    def __init__(self, writer: BigQueryWriter, sub: SubscriptionState) -> None:
        super().__init__(sub)
        self.writer = writer

    def capacity(self) -> int:
        return MAX_ROWS_IN_FLIGHT - self.in_flight

    def deliver(self, subscription: SubscriptionState, leases: list[Lease]) -> None:
        self.in_flight += len(leases)
        self.writer.spawn(self.writer.write(self, leases))


class BigQueryWriter(Outbound[BigQueryConsumer]):
    """Checks BigQuery subscriptions against their tables and writes their messages as rows."""

    def __init__(self, state: PubSubState, address: str) -> None:
        super().__init__(state)
        self.address = address  # host:port of the BigQuery emulator
        self.columns: dict[str, dict[str, str]] = {}  # table → column → type, as last read

    def wants(self, sub: SubscriptionState) -> bool:
        return bool(sub.pb.bigquery_config.table)

    def consumer_for(self, sub: SubscriptionState) -> BigQueryConsumer:
        return BigQueryConsumer(self, sub)

    def _url(self, table: str, suffix: str = "") -> str:
        project, dataset, table_id = table_parts(table)
        return (
            f"http://{self.address}/bigquery/v2/projects/{project}/datasets/{dataset}/tables/{table_id}"
            + suffix
        )

    async def check(self, pb: Any) -> None:
        """Refuse a subscription whose ``bigquery_config`` cannot be served; mark an accepted one ACTIVE."""
        config = pb.bigquery_config
        if not config.table:
            return
        if pb.push_config.push_endpoint:  # refused by validation.validate_subscription, as on update
            return
        for option in ("use_topic_schema", "use_table_schema"):
            if getattr(config, option):
                raise gexc.MethodNotImplemented(
                    f"bigquery_config.{option} is not supported by the local emulator"
                )
        url = self._url(config.table)
        try:
            async with self.client().get(url, timeout=aiohttp.ClientTimeout(total=10)) as response:
                body = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as error:
            message = f"The BigQuery emulator at {self.address} is unreachable: {error}"
            raise gexc.ServiceUnavailable(message) from None
        if status == 404:
            raise gexc.NotFound(f"Table not found: {config.table}")
        if status != 200:
            raise gexc.FailedPrecondition(f"Cannot read the table {config.table}: HTTP {status}")
        fields = body.get("schema", {}).get("fields", [])
        problems = schema_problems(config, fields)
        if problems:
            raise gexc.InvalidArgument(
                f"Invalid [bigquery_config.table] {config.table}: " + "; ".join(problems)
            )
        self.columns[config.table] = {str(f["name"]): str(f.get("type", "")).upper() for f in fields}
        config.state = ACTIVE

    def row(self, sub: SubscriptionState, lease: Lease) -> dict[str, Any] | None:
        """The row of one message, or None when its data cannot go into the ``data`` column."""
        config = sub.pb.bigquery_config
        message = lease.entry.stored.message
        data = bytes(message.data)
        if self.columns.get(config.table, {}).get("data", "BYTES") == "BYTES":
            value: str = base64.b64encode(data).decode("ascii")
        else:
            try:
                value = data.decode("utf-8")
            except UnicodeDecodeError:
                return None
        row: dict[str, Any] = {"data": value}
        if config.write_metadata:
            row["subscription_name"] = sub.name
            row["message_id"] = str(message.message_id)
            row["publish_time"] = message.publish_time.ToJsonString()
            row["attributes"] = json.dumps(dict(message.attributes), sort_keys=True)
        return row

    async def write(self, consumer: BigQueryConsumer, leases: list[Lease]) -> None:
        sub = consumer.sub
        try:
            rows = [(lease, self.row(sub, lease)) for lease in leases]
            writable = [(lease, row) for lease, row in rows if row is not None]
            failed = {id(lease) for lease, row in rows if row is None}
            if writable:
                failed |= await self._insert(sub, writable)
            for lease in leases:
                if id(lease) in failed:
                    self.state.nack(sub, lease.ack_id)
                else:
                    self.state.ack_one(sub, lease.ack_id)
        finally:
            consumer.in_flight -= len(leases)
            if sub.name in self.state.subscriptions:
                self.state.dispatch(sub)

    async def _insert(self, sub: SubscriptionState, writable: list[tuple[Lease, dict[str, Any]]]) -> set[int]:
        """``insertAll`` the rows; the ``id`` of each lease whose row was not written."""
        config: Any = sub.pb.bigquery_config  # the raw pb
        body = {
            "skipInvalidRows": True,
            "rows": [
                {"insertId": f"{sub.name}/{lease.entry.stored.message.message_id}", "json": row}
                for lease, row in writable
            ],
        }
        everything = {id(lease) for lease, _ in writable}
        try:
            async with self.client().post(
                self._url(config.table, "/insertAll"),
                json=body,
                timeout=aiohttp.ClientTimeout(total=sub.ack_deadline),
            ) as response:
                status = response.status
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as error:
            log.info("writing %d rows of %s to %s failed: %s", len(writable), sub.name, config.table, error)
            return everything
        if status != 200:
            if status == 404:
                config.state = NOT_FOUND
            log.info("writing rows of %s to %s failed: HTTP %s %s", sub.name, config.table, status, answer)
            return everything
        config.state = ACTIVE
        refused = {int(item.get("index", -1)) for item in answer.get("insertErrors", [])}
        if refused:
            log.info("%s: BigQuery refused %d rows of %s: %s", config.table, len(refused), sub.name, answer)
        return {id(writable[index][0]) for index in refused if 0 <= index < len(writable)}
