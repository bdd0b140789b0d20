"""saga_completion: the workflow's final saga result → a CloudEvent on ``saga-results``; a body with
``notice`` (a saga stuck or parked, waiting for an operator) → a notice CloudEvent on the same topic.

200 ``{"message_id", "event_id", "result"}`` once published (``result``: the saga result as published;
no ``result`` for a notice);
400 naming every bad field; a publishing failure raises (500) so the workflow's retried call publishes
again (same ``ce-id``)."""

from __future__ import annotations

import os
from typing import Any

import flask
import functions_framework
from saga_orchestrator import runtime
from saga_orchestrator.completion import announce, complete
from saga_orchestrator.errors import InvalidRequestError


@functions_framework.http
def saga_completion(request: flask.Request) -> Any:
    if request.method != "POST":
        return flask.jsonify({"error": "POST the saga result as JSON"}), 405
    body = request.get_json(force=True, silent=True)
    if body is None:
        return flask.jsonify({"error": "the body must be a JSON saga result", "errors": []}), 400
    rt = runtime.current(os.environ)
    if isinstance(body, dict) and "notice" in body:
        try:
            announced = announce(body, rt.settings, rt.publisher())
        except InvalidRequestError as error:
            return flask.jsonify({"error": str(error), "errors": [e.to_dict() for e in error.errors]}), 400
        return flask.jsonify({"message_id": announced.message_id, "event_id": announced.event_id}), 200
    try:
        published = complete(body, rt.settings, rt.publisher())
    except InvalidRequestError as error:
        return flask.jsonify({"error": str(error), "errors": [e.to_dict() for e in error.errors]}), 400
    answer = {"message_id": published.message_id, "event_id": published.event_id}
    # The workflow returns the published result as its own, so the execution and the event agree.
    return flask.jsonify({**answer, "result": published.result.to_dict()}), 200
