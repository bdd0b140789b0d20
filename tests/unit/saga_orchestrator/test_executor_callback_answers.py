"""How step_executor answers Cloud Tasks for each answer of the Workflows callback: a 4xx that another try
cannot get past means nobody listens (200, the participant is not called again); 401/403/408/429, a 5xx
or no answer mean try again (424 after a call, so that Cloud Tasks counts the call as an attempt)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from saga_orchestrator.executor import execution_of

from tests.support.executor import plain_executor
from tests.support.http import RecordingHttpServer, ScriptedResponse

EXECUTION = "projects/p/locations/us-central1/workflows/saga-orchestrator/executions/e-1"
CALLBACK_PATH = f"/v1/{EXECUTION}/callbacks/cb-1"


def task(server: RecordingHttpServer) -> dict[str, Any]:
    return {
        "saga_id": "s1",
        "step_name": "book",
        "action": "execute",
        "call": {"url": server.url("/book"), "auth": "none", "max_attempts": 3},
        "callback_url": server.url(CALLBACK_PATH),
        "outputs": {},
    }


def last_log(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    entry: dict[str, Any] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return entry


@pytest.mark.parametrize("status", [400, 404, 409, 410, 412, 422])
def test_a_callback_answering_a_final_4xx_is_taken_as_nobody_listening(
    http_server: RecordingHttpServer, capsys: pytest.CaptureFixture[str], status: int
) -> None:
    http_server.script("/book", ScriptedResponse(200, b'{"id": 7}'))
    http_server.script(CALLBACK_PATH, ScriptedResponse(status, b""))
    reply = plain_executor().handle(task(http_server), {"X-CloudTasks-TaskExecutionCount": "0"})
    assert reply.status_code == 200  # Cloud Tasks stops: the participant is not called again
    assert reply.body == {"outcome": "unheard", "result": "succeeded", "attempts": 1}
    entry = last_log(capsys)
    assert entry["severity"] == "WARNING"
    assert EXECUTION in entry["message"] and f"HTTP {status}" in entry["message"]
    assert entry["execution"] == EXECUTION


@pytest.mark.parametrize("status", [401, 403, 408, 429, 500, 503])
def test_a_callback_answering_a_status_another_try_may_pass_makes_cloud_tasks_retry(
    http_server: RecordingHttpServer, capsys: pytest.CaptureFixture[str], status: int
) -> None:
    http_server.script("/book", ScriptedResponse(200, b"{}"))
    http_server.script(CALLBACK_PATH, ScriptedResponse(status, b""))
    reply = plain_executor().handle(task(http_server), {"X-CloudTasks-TaskExecutionCount": "0"})
    assert reply.status_code == 424
    assert reply.body["outcome"] == "callback_failed"
    assert f"HTTP {status}" in reply.body["message"]
    assert last_log(capsys)["severity"] == "ERROR"


def test_an_invalid_task_whose_callback_answers_a_final_4xx_is_not_retried(
    http_server: RecordingHttpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    http_server.script(CALLBACK_PATH, ScriptedResponse(409, b""))
    bad = task(http_server)
    bad["action"] = "undo"
    reply = plain_executor().handle(bad, {})
    assert reply.status_code == 200
    assert reply.body["outcome"] == "unheard"
    assert http_server.requests_to("/book") == []
    assert EXECUTION in last_log(capsys)["message"]


def test_the_execution_is_read_from_a_workflows_callback_url_and_any_other_url_is_named_whole() -> None:
    url = f"https://workflowexecutions.googleapis.com{CALLBACK_PATH}"
    assert execution_of(url) == EXECUTION
    assert execution_of("http://127.0.0.1:9/cb") == "http://127.0.0.1:9/cb"
