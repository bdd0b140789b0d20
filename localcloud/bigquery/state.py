"""BigQuery's state: datasets, their tables (schema kept and returned) and each table's rows, in memory.

Behaviour (REST reference, https://cloud.google.com/bigquery/docs/reference/rest/v2/datasets/insert and the
pages of ``datasets/get``, ``datasets/delete``, ``tables/insert``, ``tables/get``, ``tables/delete``,
``tables/list``, ``tabledata/insertAll``, ``tabledata/list``; errors as
https://cloud.google.com/bigquery/docs/error-messages lists them):

- Dataset ids: letters, digits and underscores, at most 1,024 characters
  (https://cloud.google.com/bigquery/docs/datasets#dataset-naming); table ids: letters, marks, digits,
  connectors, dashes and spaces, at most 1,024 characters (https://cloud.google.com/bigquery/docs/tables#table_naming).
  A bad id is 400 ``invalid``.
- Creating a dataset or a table that exists is 409 ``duplicate`` ("Already Exists: Dataset p:d"); reading
  or deleting one that does not is 404 ``notFound`` ("Not found: Table p:d.t"); deleting a dataset that
  still has tables is 400 ``resourceInUse`` unless ``deleteContents=true``.
- ``insertAll`` checks every row against the schema (``localcloud.bigquery.values``). With
  ``skipInvalidRows`` the valid rows are inserted and the invalid ones reported; without it, one invalid
  row fails the whole request: nothing is inserted, the invalid rows are reported with reason ``invalid``
  and the others with reason ``stopped``. Either way the answer is 200 with ``insertErrors``. A row's
  ``insertId`` already seen on the table is dropped (best-effort de-duplication, as BigQuery documents).
- Rows are listed in insertion order, ``maxResults`` at a time, the page token being the next row's index.

``calls`` counts every request by its API method (``bigquery.tabledata.insertAll``, ...).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from google.api_core import exceptions as gexc

from localcloud.bigquery.values import RowError, check_row, normalize_schema, row_cells
from localcloud.clock import Clock

DATASET_ID = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
TABLE_ID = re.compile(r"^[\w\- ]{1,1024}$")
DEFAULT_MAX_RESULTS = 1000
DATASET_FIELDS = ("friendlyName", "description", "labels", "defaultTableExpirationMs")
TABLE_FIELDS = ("friendlyName", "description", "labels", "expirationTime")


def _ms(seconds: float) -> str:
    return str(int(seconds * 1000))


def in_use(message: str) -> gexc.BadRequest:
    return gexc.BadRequest(message, errors=[{"reason": "resourceInUse", "message": message}])


@dataclass
class Table:
    project: str
    dataset: str
    table_id: str
    fields: list[dict[str, Any]]
    created: float
    location: str
    extra: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    insert_ids: set[str] = field(default_factory=set)

    @property
    def reference(self) -> dict[str, str]:
        return {"projectId": self.project, "datasetId": self.dataset, "tableId": self.table_id}

    def resource(self, base_url: str) -> dict[str, Any]:
        full = f"{self.project}:{self.dataset}.{self.table_id}"
        return {
            "kind": "bigquery#table",
            "id": full,
            "etag": f"{len(self.rows)}-{_ms(self.created)}",
            "selfLink": f"{base_url}/bigquery/v2/projects/{self.project}/datasets/{self.dataset}/tables/"
            f"{self.table_id}",
            "tableReference": self.reference,
            "schema": {"fields": self.fields},
            "numRows": str(len(self.rows)),
            "numBytes": "0",
            "creationTime": _ms(self.created),
            "lastModifiedTime": _ms(self.created),
            "type": "TABLE",
            "location": self.location,
            **self.extra,
        }

    def list_item(self) -> dict[str, Any]:
        return {
            "kind": "bigquery#table",
            "id": f"{self.project}:{self.dataset}.{self.table_id}",
            "tableReference": self.reference,
            "type": "TABLE",
            "creationTime": _ms(self.created),
            **{k: v for k, v in self.extra.items() if k in ("friendlyName", "labels")},
        }


@dataclass
class Dataset:
    project: str
    dataset_id: str
    location: str
    created: float
    extra: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, Table] = field(default_factory=dict)

    def resource(self, base_url: str) -> dict[str, Any]:
        return {
            "kind": "bigquery#dataset",
            "id": f"{self.project}:{self.dataset_id}",
            "etag": _ms(self.created),
            "selfLink": f"{base_url}/bigquery/v2/projects/{self.project}/datasets/{self.dataset_id}",
            "datasetReference": {"projectId": self.project, "datasetId": self.dataset_id},
            "location": self.location,
            "creationTime": _ms(self.created),
            "lastModifiedTime": _ms(self.created),
            "type": "DEFAULT",
            **self.extra,
        }


class BigQueryState:
    """Every dataset of the emulator. Single-threaded: use from the event loop."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._datasets: dict[tuple[str, str], Dataset] = {}
        self.calls: Counter[str] = Counter()

    # datasets

    def insert_dataset(self, project: str, body: dict[str, Any]) -> Dataset:
        reference = body.get("datasetReference") or {}
        dataset_id = str(reference.get("datasetId") or "")
        if reference.get("projectId") and reference["projectId"] != project:
            raise gexc.BadRequest(
                "The project in the dataset reference does not match the project of the request"
            )
        if not DATASET_ID.match(dataset_id):
            raise gexc.BadRequest(
                f'Invalid dataset ID "{dataset_id}". Dataset IDs must be alphanumeric (plus underscores) '
                "and must be at most 1024 characters long."
            )
        if (project, dataset_id) in self._datasets:
            raise gexc.Conflict(f"Already Exists: Dataset {project}:{dataset_id}")
        dataset = Dataset(
            project,
            dataset_id,
            str(body.get("location") or "US"),
            self._clock.now(),
            {k: body[k] for k in DATASET_FIELDS if k in body},
        )
        self._datasets[(project, dataset_id)] = dataset
        return dataset

    def dataset(self, project: str, dataset_id: str) -> Dataset:
        found = self._datasets.get((project, dataset_id))
        if found is None:
            raise gexc.NotFound(f"Not found: Dataset {project}:{dataset_id}")
        return found

    def delete_dataset(self, project: str, dataset_id: str, delete_contents: bool) -> None:
        dataset = self.dataset(project, dataset_id)
        if dataset.tables and not delete_contents:
            raise in_use(f"Dataset {project}:{dataset_id} is still in use")
        del self._datasets[(project, dataset_id)]

    # tables

    def insert_table(self, project: str, dataset_id: str, body: dict[str, Any]) -> Table:
        dataset = self.dataset(project, dataset_id)
        reference = body.get("tableReference") or {}
        table_id = str(reference.get("tableId") or "")
        if not TABLE_ID.match(table_id):
            raise gexc.BadRequest(f'Invalid table ID "{table_id}".')
        if reference.get("datasetId") and reference["datasetId"] != dataset_id:
            raise gexc.BadRequest(
                "The dataset in the table reference does not match the dataset of the request"
            )
        for unsupported in ("view", "materializedView", "externalDataConfiguration"):
            if body.get(unsupported):
                raise gexc.MethodNotImplemented(
                    f"{unsupported} tables are not supported by the local emulator"
                )
        if table_id in dataset.tables:
            raise gexc.Conflict(f"Already Exists: Table {project}:{dataset_id}.{table_id}")
        table = Table(
            project,
            dataset_id,
            table_id,
            normalize_schema(body.get("schema")),
            self._clock.now(),
            dataset.location,
            {k: body[k] for k in TABLE_FIELDS if k in body},
        )
        dataset.tables[table_id] = table
        return table

    def table(self, project: str, dataset_id: str, table_id: str) -> Table:
        found = self.dataset(project, dataset_id).tables.get(table_id)
        if found is None:
            raise gexc.NotFound(f"Not found: Table {project}:{dataset_id}.{table_id}")
        return found

    def delete_table(self, project: str, dataset_id: str, table_id: str) -> None:
        self.table(project, dataset_id, table_id)
        del self._datasets[(project, dataset_id)].tables[table_id]

    def list_tables(self, project: str, dataset_id: str) -> list[Table]:
        dataset = self.dataset(project, dataset_id)
        return [dataset.tables[name] for name in sorted(dataset.tables)]

    # rows

    def insert_all(self, table: Table, body: dict[str, Any]) -> list[dict[str, Any]]:
        """Check and insert the rows of an ``insertAll`` request; its ``insertErrors``."""
        rows = body.get("rows")
        if not isinstance(rows, list) or not rows:
            raise gexc.BadRequest("No rows present in the request.")
        ignore_unknown = bool(body.get("ignoreUnknownValues"))
        checked: list[tuple[str, dict[str, Any]] | None] = []
        errors: list[dict[str, Any]] = []
        for index, item in enumerate(rows):
            item = item if isinstance(item, dict) else {}
            try:
                checked.append(
                    (
                        str(item.get("insertId") or ""),
                        check_row(table.fields, item.get("json"), ignore_unknown),
                    )
                )
            except RowError as error:
                checked.append(None)
                detail = {
                    "reason": "invalid",
                    "location": error.location,
                    "debugInfo": "",
                    "message": error.message,
                }
                errors.append({"index": index, "errors": [detail]})
        if errors and not body.get("skipInvalidRows"):
            stopped = {"reason": "stopped", "location": "", "debugInfo": "", "message": ""}
            errors += [{"index": i, "errors": [stopped]} for i, row in enumerate(checked) if row is not None]
            return sorted(errors, key=lambda e: int(e["index"]))
        for row in checked:
            if row is None:
                continue
            insert_id, values = row
            if insert_id and insert_id in table.insert_ids:
                continue
            if insert_id:
                table.insert_ids.add(insert_id)
            table.rows.append(values)
        return errors

    def list_rows(
        self, table: Table, start: int, max_results: int, int64_timestamps: bool
    ) -> tuple[list[dict[str, Any]], str | None]:
        end = start + max(1, min(max_results, DEFAULT_MAX_RESULTS))
        page = [row_cells(table.fields, row, int64_timestamps) for row in table.rows[start:end]]
        return page, (str(end) if end < len(table.rows) else None)
