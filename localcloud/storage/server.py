"""Serve the Cloud Storage emulator over HTTP on ``ctx.config.storage`` (``host:port``; port 0 picks a
free one). Clients reach it as ``STORAGE_EMULATOR_HOST=http://host:port``."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web
from google.api_core import exceptions as gexc

from localcloud.runtime import Context
from localcloud.storage.api import MAX_UPLOAD_BYTES, Handler, StorageApi, error_response
from localcloud.storage.state import StorageState

log = logging.getLogger("localcloud.storage")
OBJECT = "/storage/v1/b/{bucket}/o/{object:.+}"

# (HTTP method, path, API method id, handler name)
ROUTES = (
    ("POST", "/storage/v1/b", "storage.buckets.insert", "buckets_insert"),
    ("GET", "/storage/v1/b/{bucket}", "storage.buckets.get", "buckets_get"),
    ("DELETE", "/storage/v1/b/{bucket}", "storage.buckets.delete", "buckets_delete"),
    ("GET", "/storage/v1/b/{bucket}/o", "storage.objects.list", "objects_list"),
    ("POST", "/upload/storage/v1/b/{bucket}/o", "storage.objects.insert", "objects_insert"),
    ("GET", OBJECT, "storage.objects.get", "objects_get"),
    ("GET", "/download" + OBJECT, "storage.objects.get", "objects_get"),
    ("PATCH", OBJECT, "storage.objects.patch", "objects_patch"),
    ("DELETE", OBJECT, "storage.objects.delete", "objects_delete"),
)


@dataclass
class StorageService:
    name: str
    address: str
    state: StorageState
    runner: web.AppRunner

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    async def stop(self) -> None:
        await self.runner.cleanup()


def counted(state: StorageState, method: str, handler: Handler) -> Handler:
    """Count the call under ``method``, and answer an API error as Google's JSON API does."""

    async def handle(request: web.Request) -> web.StreamResponse:
        state.calls[method] += 1
        try:
            return await handler(request)
        except gexc.GoogleAPICallError as error:
            log.debug("%s %s -> %s %s", request.method, request.path, error.code, error.message)
            return error_response(error)

    return handle


def create_app(state: StorageState) -> web.Application:
    api = StorageApi(state)
    app = web.Application(client_max_size=MAX_UPLOAD_BYTES)
    for method, path, api_method, handler_name in ROUTES:
        handler: Handler = getattr(api, handler_name)
        app.router.add_route(method, path, counted(state, api_method, handler))
    app.router.add_route("GET", "/admin/calls", api.admin_calls)
    return app


async def start(ctx: Context, state: StorageState | None = None) -> StorageService:
    state = state or StorageState(ctx.clock)
    host, _, port = ctx.config.storage.rpartition(":")
    host = host or "127.0.0.1"
    runner = web.AppRunner(create_app(state), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, int(port or 0)).start()
    except BaseException:
        await runner.cleanup()
        raise
    address = f"{host}:{runner.addresses[0][1]}"
    return StorageService(name="storage", address=address, state=state, runner=runner)
