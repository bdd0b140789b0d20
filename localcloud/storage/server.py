"""Serve the Cloud Storage emulator over HTTP on ``ctx.config.storage`` (``host:port``; port 0 picks a
free one). Clients reach it as ``STORAGE_EMULATOR_HOST=http://host:port``."""

from __future__ import annotations

from aiohttp import web

from localcloud._webapp import JsonApiService, add_routes, start_app
from localcloud.runtime import Context
from localcloud.storage.api import MAX_UPLOAD_BYTES, StorageApi, error_response
from localcloud.storage.state import StorageState

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


StorageService = JsonApiService[StorageState]


def create_app(state: StorageState) -> web.Application:
    app = web.Application(client_max_size=MAX_UPLOAD_BYTES)
    add_routes(app, StorageApi(state), ROUTES, state.calls, error_response)
    return app


async def start(ctx: Context, state: StorageState | None = None) -> StorageService:
    state = state or StorageState(ctx.clock)
    runner, address = await start_app(create_app(state), ctx.config.storage)
    return StorageService(name="storage", address=address, state=state, runner=runner)
