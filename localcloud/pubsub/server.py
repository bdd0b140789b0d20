"""Serve the Pub/Sub emulator (Publisher, Subscriber, SchemaService, IAMPolicy) over gRPC on
``ctx.config.pubsub`` and run push delivery on the same event loop. Port 0 picks a free port; ``address`` reports the bound one. The same
methods are served over REST on ``ctx.config.rest_address("pubsub")`` (``rest_address``; see
``localcloud.rest_server``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc

from localcloud._project import ProjectNumbers, accept_numbers
from localcloud.pubsub.api import PubSubApi, handler_tables
from localcloud.pubsub.bigquery import BigQueryWriter
from localcloud.pubsub.push import PushWorker
from localcloud.pubsub.schema_api import SchemaApi, schema_handler_tables
from localcloud.pubsub.state import PubSubState, SubscriptionState
from localcloud.rest_server import PUBSUB_TRANSPORTS, RestServer, ServedTwice
from localcloud.runtime import Context


@dataclass
class PubSubService(ServedTwice):
    name: str
    address: str
    state: PubSubState
    api: PubSubApi
    push: PushWorker
    server: grpc.aio.Server
    rest: RestServer | None = None
    bigquery: BigQueryWriter | None = None

    async def stop(self) -> None:
        """Open StreamingPull streams end with UNAVAILABLE, so clients reconnect rather than fail."""
        if self.rest is not None:
            await self.rest.stop()
        self.api.closing.set()
        await asyncio.sleep(0.05)
        await self.server.stop(grace=0.5)
        await self.push.stop()
        if self.bigquery is not None:
            await self.bigquery.stop()
        await self.state.stop()


async def start(ctx: Context) -> PubSubService:
    from localcloud import _grpc

    state = PubSubState(ctx.clock)
    state.start()
    push = PushWorker(state, ctx.authority)
    # BigQuery subscriptions write to the BigQuery emulator at ctx.config.bigquery (localcloud.pubsub.bigquery).
    bigquery = BigQueryWriter(state, ctx.config.bigquery)

    def sync(sub: SubscriptionState) -> None:
        push.sync(sub)
        bigquery.sync(sub)

    api = PubSubApi(state, sync, ctx.quotas)
    api.check_subscription = bigquery.check
    address = ctx.config.pubsub
    tables = handler_tables(api) + schema_handler_tables(SchemaApi(state))
    # A project number in a name is the project it stands for; answers name it by id, the form Pub/Sub
    # documents for its names (https://cloud.google.com/pubsub/docs/pubsub-basics#resource_names).
    accept_numbers(tables, ProjectNumbers(ctx.config.project_id))
    try:
        server = await _grpc.start_server(address, tables)
    except BaseException:
        await state.stop()
        raise
    host = address.rpartition(":")[0] or "127.0.0.1"
    service = PubSubService(
        name="pubsub", address=f"{host}:{server.bound_port}", state=state, api=api, push=push, server=server
    )
    service.bigquery = bigquery
    await service.open_rest(ctx.config.rest_address("pubsub"), tables, PUBSUB_TRANSPORTS)
    return service
