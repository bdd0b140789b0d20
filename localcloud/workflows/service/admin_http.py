"""The engine's admin pages (not a Google API), served beside the callbacks:
``GET /admin/executions[?state=ACTIVE]`` (newest first) and ``GET /admin/executions/<id>`` — state,
current step and billable steps of each execution still kept; 404 for an unknown id.
"""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

from localcloud.workflows.service.callbacks_http import google_error


class AdminSource(Protocol):
    """What the admin pages show; the Workflows state provides it."""

    def admin_execution(self, execution_id: str) -> dict[str, Any] | None: ...

    def admin_executions(self, state: str | None = None) -> list[dict[str, Any]]: ...


def add_admin_routes(app: web.Application, admin: AdminSource) -> None:
    async def admin_execution(request: web.Request) -> web.StreamResponse:
        found = admin.admin_execution(request.match_info["execution"])
        if found is None:
            return google_error(404, "NOT_FOUND", "execution not found")
        return web.json_response(found)

    async def admin_executions(request: web.Request) -> web.StreamResponse:
        return web.json_response({"executions": admin.admin_executions(request.query.get("state"))})

    app.router.add_route("GET", "/admin/executions", admin_executions)
    app.router.add_route("GET", "/admin/executions/{execution}", admin_execution)
