"""step_executor: one Cloud Tasks attempt of one saga step action (HTTP, OIDC-authenticated by the
platform). Answers 200 after reporting a final outcome, and 424 to make Cloud Tasks retry after a call
(a transient failure, or a callback not delivered): below 500, so X-CloudTasks-TaskExecutionCount counts
it and a step's attempts count the calls that reached its participant (saga_orchestrator.executor)."""

from __future__ import annotations

import os
from typing import Any

import flask
import functions_framework
from saga_orchestrator import runtime


@functions_framework.http
def step_executor(request: flask.Request) -> Any:
    if request.method != "POST":
        return flask.jsonify({"error": "POST a Cloud Task body"}), 405
    body = request.get_json(force=True, silent=True)
    reply = runtime.current(os.environ).executor().handle(body, dict(request.headers))
    return flask.jsonify(reply.body), reply.status_code
