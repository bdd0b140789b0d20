"""Serve the BigQuery emulator over HTTP on ``ctx.config.bigquery`` (``host:port``; port 0 picks a free
one). Clients reach it as ``BIGQUERY_EMULATOR_HOST=http://host:port``, which google-cloud-bigquery reads as
its endpoint (``google.cloud.bigquery._helpers._get_bigquery_host``), or with
``client_options={"api_endpoint": "http://host:port"}``.

The address actually bound is written back into ``ctx.config`` (its ``bigquery`` field), so the Pub/Sub
emulator started after it in the same process writes its BigQuery subscriptions' rows there."""

from __future__ import annotations

import dataclasses

from aiohttp import web

from localcloud._webapp import JsonApiService, add_routes, counted, start_app
from localcloud.bigquery.api import MAX_REQUEST_BYTES, BigQueryApi, error_response
from localcloud.bigquery.state import BigQueryState
from localcloud.runtime import Context

PROJECT = "/bigquery/v2/projects/{project}"
DATASET = PROJECT + "/datasets/{dataset}"
TABLE = DATASET + "/tables/{table}"

# (HTTP method, path, API method id, handler name)
ROUTES = (
    ("POST", PROJECT + "/datasets", "bigquery.datasets.insert", "datasets_insert"),
    ("GET", DATASET, "bigquery.datasets.get", "datasets_get"),
    ("DELETE", DATASET, "bigquery.datasets.delete", "datasets_delete"),
    ("POST", DATASET + "/tables", "bigquery.tables.insert", "tables_insert"),
    ("GET", DATASET + "/tables", "bigquery.tables.list", "tables_list"),
    ("GET", TABLE, "bigquery.tables.get", "tables_get"),
    ("DELETE", TABLE, "bigquery.tables.delete", "tables_delete"),
    ("POST", TABLE + "/insertAll", "bigquery.tabledata.insertAll", "tabledata_insert_all"),
    ("GET", TABLE + "/data", "bigquery.tabledata.list", "tabledata_list"),
)


BigQueryService = JsonApiService[BigQueryState]


def create_app(state: BigQueryState) -> web.Application:
    api = BigQueryApi(state)
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    add_routes(app, api, ROUTES, state.calls, error_response)
    app.router.add_route(
        "*", "/{tail:.*}", counted(state.calls, "not served", api.not_served, error_response)
    )
    return app


async def start(ctx: Context, state: BigQueryState | None = None) -> BigQueryService:
    state = state or BigQueryState(ctx.clock)
    runner, address = await start_app(create_app(state), ctx.config.bigquery)
    ctx.config = dataclasses.replace(ctx.config, bigquery=address)
    return BigQueryService(name="bigquery", address=address, state=state, runner=runner)
