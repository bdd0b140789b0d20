"""saga_sweeper: one sweep (HTTP, called by Cloud Scheduler with an OIDC token; locally by the stack's
timer). 200 ``{"swept": [{saga_id, execution, cause, event_id}]}`` once every ended execution of the
window has its ``failed`` result published; a Workflows or Pub/Sub failure raises (500) and the next
scheduled sweep tries again (same ``ce-id``s, so consumers dedupe)."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import flask
import functions_framework
from saga_orchestrator import runtime
from saga_orchestrator.executions import WorkflowExecutions
from saga_orchestrator.sweeper import Sweeper, window_seconds


def _sweeper() -> Sweeper:
    """Cheap to build: the clients and the publisher are the runtime's, built once per process."""
    rt = runtime.current(os.environ)
    executions = WorkflowExecutions(rt.clients.executions, rt.settings.workflow_path)
    return Sweeper(
        executions,
        rt.publisher(),
        workflow_path=rt.settings.workflow_path,
        window_seconds=window_seconds(os.environ),
    )


@functions_framework.http
def saga_sweeper(request: flask.Request) -> Any:
    if request.method not in ("POST", "GET"):
        return flask.jsonify({"error": "POST (or GET) to sweep"}), 405
    swept = _sweeper().sweep()
    return flask.jsonify({"swept": [dataclasses.asdict(s) for s in swept]}), 200
