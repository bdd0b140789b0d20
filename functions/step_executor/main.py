"""step_executor: one Cloud Tasks attempt of one saga step action (HTTP, OIDC-authenticated by the
platform). Answers 200 after reporting a final outcome, and 424 to make Cloud Tasks retry after a call
(a transient failure, or a callback not delivered): below 500, so X-CloudTasks-TaskExecutionCount counts
it and a step's attempts count the calls that reached its participant (saga_orchestrator.executor).

The workflow also calls it directly, with a forward run (``{"run": "forward", ...}``): the first attempt
of the saga's steps in a row, answered with what they settled (saga_orchestrator.forward)."""

from __future__ import annotations

import os
from typing import Any

import flask
import functions_framework
from saga_orchestrator import runtime
from saga_orchestrator.forward import is_forward_run


@functions_framework.http
def step_executor(request: flask.Request) -> Any:
    if request.method != "POST":
        return flask.jsonify({"error": "POST a Cloud Task body"}), 405
    body = request.get_json(force=True, silent=True)
    if is_forward_run(body):
        status, answer = runtime.current(os.environ).forward().handle(body)
        return flask.jsonify(answer), status
    reply = runtime.current(os.environ).executor().handle(body, dict(request.headers))
    return flask.jsonify(reply.body), reply.status_code
