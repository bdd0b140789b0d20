"""The engine's own pages (not a Google API), served beside the callbacks and step entries:

- ``GET /`` — an index: what this address serves, where the gRPC APIs are, and the newest executions
  with their state and current step. JSON, or a small HTML page for a browser (``Accept: text/html``).
- ``GET /admin/executions[?state=ACTIVE]`` (newest first) and ``GET /admin/executions/<id>`` — state,
  current step and billable steps of each execution still kept, under both readings of the pricing rule
  (``billableSteps`` one per step, ``billableStepsPerAssignment`` one per variable assignment; see
  ``engine/metering.py``); 404 for an unknown id.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any, Protocol

from aiohttp import web

from localcloud.workflows.service.callbacks_http import google_error

INDEX_EXECUTIONS = 20
EXECUTION_PATH = "/v1/projects/{project}/locations/{location}/workflows/{workflow}/executions/{execution}"
SERVED = {
    "callbacks.list": f"GET {EXECUTION_PATH}/callbacks",
    "callbacks.sendHttpCallback": f"<callback method> {EXECUTION_PATH}/callbacks/{{callback}}",
    "stepEntries.list": f"GET {EXECUTION_PATH}/stepEntries",
    "stepEntries.get": f"GET {EXECUTION_PATH}/stepEntries/{{entry}}",
    "admin executions": "GET /admin/executions[?state=STATE]",
    "admin execution": "GET /admin/executions/{execution id}",
}


class AdminSource(Protocol):
    """What the admin pages show; the Workflows state provides it."""

    def admin_execution(self, execution_id: str) -> dict[str, Any] | None: ...

    def admin_executions(self, state: str | None = None) -> list[dict[str, Any]]: ...


def add_admin_routes(
    app: web.Application, admin: AdminSource, grpc_address: Callable[[], str | None] = lambda: None
) -> None:
    """``grpc_address`` tells the index where the gRPC APIs listen (known once that server is up)."""

    async def admin_execution(request: web.Request) -> web.StreamResponse:
        found = admin.admin_execution(request.match_info["execution"])
        if found is None:
            return google_error(404, "NOT_FOUND", "execution not found")
        return web.json_response(found)

    async def admin_executions(request: web.Request) -> web.StreamResponse:
        return web.json_response({"executions": admin.admin_executions(request.query.get("state"))})

    async def index(request: web.Request) -> web.StreamResponse:
        body = index_page(admin, grpc_address())
        if "text/html" in request.headers.get("Accept", ""):
            return web.Response(text=index_html(body), content_type="text/html")
        return web.json_response(body)

    app.router.add_route("GET", "/", index)
    app.router.add_route("GET", "/admin/executions", admin_executions)
    app.router.add_route("GET", "/admin/executions/{execution}", admin_execution)


def index_page(admin: AdminSource, grpc_address: str | None) -> dict[str, Any]:
    executions = [
        {
            "name": e.get("name"),
            "state": e.get("state"),
            "currentStep": e.get("currentStep"),
            "startTime": e.get("startTime"),
            "endTime": e.get("endTime"),
        }
        for e in admin.admin_executions()[:INDEX_EXECUTIONS]
    ]
    return {
        "service": "Cloud Workflows emulator of the local cloud",
        "grpc": {
            "address": grpc_address,
            "services": [
                "google.cloud.workflows.v1.Workflows",
                "google.cloud.workflows.executions.v1.Executions",
                "google.longrunning.Operations",
            ],
        },
        "http": SERVED,
        "authentication": "the Google APIs here need 'Authorization: Bearer <access token>' with the "
        "cloud-platform scope; the admin pages need none",
        "recentExecutions": executions,
    }


def index_html(page: dict[str, Any]) -> str:
    rows = "".join(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
            html.escape(str(e["name"])),
            html.escape(str(e["state"])),
            html.escape(_step(e["currentStep"])),
            html.escape(str(e["startTime"])),
        )
        for e in page["recentExecutions"]
    )
    served = "".join(
        f"<li>{html.escape(what)}: <code>{html.escape(path)}</code></li>"
        for what, path in page["http"].items()
    )
    grpc = html.escape(str(page["grpc"]["address"] or "starting"))
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Workflows emulator</title></head><body>"
        f"<h1>{html.escape(page['service'])}</h1>"
        f"<p>gRPC (Workflows, Executions, Operations): <code>{grpc}</code></p>"
        f"<h2>This address</h2><ul>{served}</ul><p>{html.escape(page['authentication'])}</p>"
        "<h2>Recent executions</h2><table><tr><th>execution</th><th>state</th><th>current step</th>"
        f"<th>started</th></tr>{rows}</table></body></html>"
    )


def _step(current: Any) -> str:
    if not isinstance(current, dict):
        return ""
    return f"{current.get('routine')}.{current.get('step')}"
