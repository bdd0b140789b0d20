"""Serve the BigQuery emulator over HTTP on ``ctx.config.bigquery`` (``host:port``; port 0 picks a free
one). Clients reach it as ``BIGQUERY_EMULATOR_HOST=http://host:port``, which google-cloud-bigquery reads as
its endpoint (``google.cloud.bigquery._helpers._get_bigquery_host``), or with
``client_options={"api_endpoint": "http://host:port"}``.

The address actually bound is written back into ``ctx.config`` (its ``bigquery`` field), so the Pub/Sub
emulator started after it in the same process writes its BigQuery subscriptions' rows there."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from aiohttp import web
from google.api_core import exceptions as gexc

from localcloud.bigquery.api import MAX_REQUEST_BYTES, BigQueryApi, Handler, error_response
from localcloud.bigquery.state import BigQueryState
from localcloud.runtime import Context

log = logging.getLogger("localcloud.bigquery")
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


@dataclass
class BigQueryService:
    name: str
    address: str
    state: BigQueryState
    runner: web.AppRunner

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    async def stop(self) -> None:
        await self.runner.cleanup()


def counted(state: BigQueryState, method: str, handler: Handler) -> Handler:
    """Count the call under ``method``, and answer an API error as Google's REST API does."""

    async def handle(request: web.Request) -> web.StreamResponse:
        state.calls[method] += 1
        try:
            return await handler(request)
        except gexc.GoogleAPICallError as error:
            log.debug("%s %s -> %s %s", request.method, request.path, error.code, error.message)
            return error_response(error)

    return handle


def create_app(state: BigQueryState) -> web.Application:
    api = BigQueryApi(state)
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    app.router.add_route("GET", "/admin/calls", api.admin_calls)
    for method, path, api_method, handler_name in ROUTES:
        handler: Handler = getattr(api, handler_name)
        app.router.add_route(method, path, counted(state, api_method, handler))
    app.router.add_route("*", "/{tail:.*}", counted(state, "not served", api.not_served))
    return app


async def start(ctx: Context, state: BigQueryState | None = None) -> BigQueryService:
    state = state or BigQueryState(ctx.clock)
    host, _, port = ctx.config.bigquery.rpartition(":")
    host = host or "127.0.0.1"
    runner = web.AppRunner(create_app(state), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, int(port or 0)).start()
    except BaseException:
        await runner.cleanup()
        raise
    address = f"{host}:{runner.addresses[0][1]}"
    ctx.config = dataclasses.replace(ctx.config, bigquery=address)
    return BigQueryService(name="bigquery", address=address, state=state, runner=runner)
