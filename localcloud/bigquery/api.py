"""BigQuery REST handlers, one per API method (``bigquery.tables.insert`` → ``tables_insert``), over
aiohttp; the rules live in :mod:`localcloud.bigquery.state`.

What the wire looks like (https://cloud.google.com/bigquery/docs/reference/rest, and what
``google-cloud-bigquery`` sends), every path under ``/bigquery/v2/projects/{projectId}``:

- ``POST /datasets`` with a ``Dataset`` (``datasetReference``, ``location``, ...) creates one
  (https://cloud.google.com/bigquery/docs/reference/rest/v2/datasets/insert); ``GET``/``DELETE
  /datasets/D`` read and delete it, ``?deleteContents=true`` deleting its tables too
  (https://cloud.google.com/bigquery/docs/reference/rest/v2/datasets/delete).
- ``POST /datasets/D/tables`` with a ``Table`` (``tableReference``, ``schema``) creates one
  (https://cloud.google.com/bigquery/docs/reference/rest/v2/tables/insert); ``GET /datasets/D/tables``
  lists them (``maxResults``, ``pageToken``; https://cloud.google.com/bigquery/docs/reference/rest/v2/tables/list);
  ``GET``/``DELETE /datasets/D/tables/T`` read and delete one.
- ``POST /datasets/D/tables/T/insertAll`` streams rows in
  (https://cloud.google.com/bigquery/docs/reference/rest/v2/tabledata/insertAll); ``GET
  /datasets/D/tables/T/data`` reads them back (``maxResults``, ``pageToken``, ``startIndex``,
  ``formatOptions.useInt64Timestamp``; https://cloud.google.com/bigquery/docs/reference/rest/v2/tabledata/list).
- Errors are ``{"error": {"code", "message", "errors": [{"domain", "reason", "message"}], "status"}}``
  (https://cloud.google.com/bigquery/docs/errors), which the client turns into
  ``google.api_core.exceptions`` (404 ``notFound`` → ``NotFound``, 409 ``duplicate`` → ``Conflict``, 400
  ``invalid`` → ``BadRequest``). Any other method (queries, jobs, ...) is 501 ``notImplemented``.
- The emulator checks no credentials.
- ``GET /admin/calls`` (not a Google API) answers ``{"calls": {"bigquery.tabledata.insertAll": N, ...}}``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from google.api_core import exceptions as gexc

from localcloud._webapp import json_body
from localcloud.bigquery.state import DEFAULT_MAX_RESULTS, BigQueryState, Table

MAX_REQUEST_BYTES = 10 * 1024 * 1024  # insertAll's documented limit per request
REASONS = {400: "invalid", 401: "required", 403: "accessDenied", 404: "notFound", 409: "duplicate"}
REASONS |= {501: "notImplemented"}
STATUSES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}
STATUSES |= {409: "ALREADY_EXISTS", 501: "UNIMPLEMENTED"}


def error_response(error: gexc.GoogleAPICallError) -> web.Response:
    code = int(error.code or 500)
    message = str(error.message)
    given = error.errors[0] if error.errors and isinstance(error.errors[0], dict) else {}
    reason = str(given.get("reason") or REASONS.get(code, "backendError"))
    detail = {"message": message, "domain": "global", "reason": reason}
    body = {
        "error": {
            "code": code,
            "message": message,
            "errors": [detail],
            "status": STATUSES.get(code, "UNKNOWN"),
        }
    }
    return web.json_response(body, status=code)


def _int(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise gexc.BadRequest(f"Invalid value for {name}: {raw!r}") from None
    if value < 0:
        raise gexc.BadRequest(f"Invalid value for {name}: {raw!r}")
    return value


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("true", "1")


class BigQueryApi:
    def __init__(self, state: BigQueryState) -> None:
        self.state = state

    def base_url(self, request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"

    def _table(self, request: web.Request) -> Table:
        info = request.match_info
        return self.state.table(info["project"], info["dataset"], info["table"])

    async def datasets_insert(self, request: web.Request) -> web.StreamResponse:
        dataset = self.state.insert_dataset(request.match_info["project"], await json_body(request))
        return web.json_response(dataset.resource(self.base_url(request)))

    async def datasets_get(self, request: web.Request) -> web.StreamResponse:
        dataset = self.state.dataset(request.match_info["project"], request.match_info["dataset"])
        return web.json_response(dataset.resource(self.base_url(request)))

    async def datasets_delete(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        self.state.delete_dataset(info["project"], info["dataset"], _flag(request, "deleteContents"))
        return web.Response(status=204)

    async def tables_insert(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        table = self.state.insert_table(info["project"], info["dataset"], await json_body(request))
        return web.json_response(table.resource(self.base_url(request)))

    async def tables_get(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self._table(request).resource(self.base_url(request)))

    async def tables_delete(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        self.state.delete_table(info["project"], info["dataset"], info["table"])
        return web.Response(status=204)

    async def tables_list(self, request: web.Request) -> web.StreamResponse:
        tables = self.state.list_tables(request.match_info["project"], request.match_info["dataset"])
        start = _int(request, "pageToken", 0)
        end = start + max(1, min(_int(request, "maxResults", DEFAULT_MAX_RESULTS), DEFAULT_MAX_RESULTS))
        body: dict[str, Any] = {
            "kind": "bigquery#tableList",
            "etag": str(len(tables)),
            "tables": [table.list_item() for table in tables[start:end]],
            "totalItems": len(tables),
        }
        if end < len(tables):
            body["nextPageToken"] = str(end)
        return web.json_response(body)

    async def tabledata_insert_all(self, request: web.Request) -> web.StreamResponse:
        table = self._table(request)
        errors = self.state.insert_all(table, await json_body(request))
        body: dict[str, Any] = {"kind": "bigquery#tableDataInsertAllResponse"}
        if errors:
            body["insertErrors"] = errors
        return web.json_response(body)

    async def tabledata_list(self, request: web.Request) -> web.StreamResponse:
        table = self._table(request)
        start = _int(request, "pageToken", _int(request, "startIndex", 0))
        rows, token = self.state.list_rows(
            table,
            start,
            _int(request, "maxResults", DEFAULT_MAX_RESULTS),
            _flag(request, "formatOptions.useInt64Timestamp"),
        )
        body: dict[str, Any] = {
            "kind": "bigquery#tableDataList",
            "etag": str(len(table.rows)),
            "totalRows": str(len(table.rows)),
            "rows": rows,
        }
        if token:
            body["pageToken"] = token
        return web.json_response(body)

    async def not_served(self, request: web.Request) -> web.StreamResponse:
        raise gexc.MethodNotImplemented(
            f"{request.method} {request.path} is not served by the local BigQuery emulator"
        )
