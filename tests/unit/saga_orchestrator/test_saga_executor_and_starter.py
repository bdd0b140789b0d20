from __future__ import annotations

import base64
import json
import socket
from typing import Any

import pytest
from saga_orchestrator.errors import InvalidRequestError
from saga_orchestrator.events import PubsubMessage, decode_result
from saga_orchestrator.executor import StepExecutor
from saga_orchestrator.httpclient import HttpClient
from saga_orchestrator.model import SagaRequest
from saga_orchestrator.ports import StartOutcome
from saga_orchestrator.settings import Settings
from saga_orchestrator.starter import SagaStarter, decode_event
from saga_orchestrator.starts import StartInProgressError

from tests.contract.cloud import StaticTokenSource
from tests.support.executor import NoSecrets, plain_executor
from tests.support.http import RecordingHttpServer, ScriptedResponse


def body(participant: RecordingHttpServer, callback_url: str | None, max_attempts: int = 2) -> dict[str, Any]:
    return {
        "saga_id": "s1",
        "step_name": "a",
        "action": "compensate",
        "call": {"url": participant.url("/undo"), "auth": "none", "max_attempts": max_attempts},
        "callback_url": callback_url,
        "outputs": {},
    }


def test_an_attempt_after_an_undelivered_final_report_calls_again_and_reports(http_server):
    # max_attempts 2, but Cloud Tasks came back a third time because the last callback failed (424).
    http_server.script("/undo", ScriptedResponse(503, b""))
    headers = {"x-cloudtasks-taskexecutioncount": "2"}
    reply = plain_executor().handle(body(http_server, http_server.url("/cb")), headers)
    assert reply.status_code == 200
    [report] = http_server.requests_to("/cb")
    assert json.loads(report.body)["error"]["kind"] == "exhausted"
    assert json.loads(report.body)["attempts"] == 3


def test_the_execution_count_header_is_read_case_insensitively(http_server):
    http_server.script("/undo", ScriptedResponse(503, b""))
    first = {"X-CloudTasks-TaskExecutionCount": "0"}
    assert plain_executor().handle(body(http_server, None), first).status_code == 424
    second = {"X-Cloudtasks-Taskexecutioncount": "1"}
    assert plain_executor().handle(body(http_server, None), second).status_code == 200


def test_an_invalid_task_with_a_callback_is_reported_as_invalid(http_server):
    task = body(http_server, http_server.url("/cb"))
    task["action"] = "undo"
    reply = plain_executor().handle(task, {})
    assert reply.status_code == 200
    [report] = http_server.requests_to("/cb")
    assert json.loads(report.body)["error"]["kind"] == "invalid"
    assert http_server.requests_to("/undo") == []


class Recorder:
    """Stands for the starter's ports: ``SagaStarts`` and ``Publisher``."""

    def __init__(self, racing_winner: str | None = None, busy: bool = False) -> None:
        self.started: list[SagaRequest] = []
        self.published: list[PubsubMessage] = []
        self.racing_winner = racing_winner
        self.busy = busy

    def start(self, request: SagaRequest) -> StartOutcome:
        if self.busy:
            raise StartInProgressError(request.saga_id, 1.0)
        if self.racing_winner:
            return StartOutcome(self.racing_winner, created=False)
        if any(r.saga_id == request.saga_id for r in self.started):
            return StartOutcome(f"exec-{request.saga_id}", created=False)
        self.started.append(request)
        return StartOutcome(f"exec-{request.saga_id}", created=True)

    def publish(self, message: PubsubMessage) -> str:
        self.published.append(message)
        return str(len(self.published))


def event_data(request: Any, message_id: str = "m-1") -> dict[str, Any]:
    raw = base64.b64encode(json.dumps(request).encode()).decode()
    return {"message": {"data": raw, "messageId": message_id, "publishTime": "2026-11-25T22:00:00Z"}}


def test_the_starter_starts_then_dedupes_then_rejects():
    recorder = Recorder()
    starter = SagaStarter(Settings.from_env({}), executions=recorder, publisher=recorder)
    request = {"saga_id": "t-1", "steps": [{"name": "a", "execute_url": "http://localhost:1/"}]}
    assert starter.handle_event("m-1", event_data(request)).outcome == "started"
    assert starter.handle_event("m-1", event_data(request)).outcome == "duplicate"
    assert recorder.started[0].requested_at == "2026-11-25T22:00:00.000Z"
    result = starter.handle_event("m-2", {"no": "message"})
    assert result.outcome == "rejected"
    event = decode_result(recorder.published[0].data, recorder.published[0].attributes)
    assert [e.field for e in event.result.errors] == ["message"]


def test_a_start_under_way_elsewhere_propagates_so_the_event_is_redelivered():
    recorder = Recorder(busy=True)
    starter = SagaStarter(Settings.from_env({}), executions=recorder, publisher=recorder)
    request = {"saga_id": "t-1", "steps": [{"name": "a", "execute_url": "http://localhost:1/"}]}
    with pytest.raises(StartInProgressError):
        starter.handle_event("m-1", event_data(request))
    assert recorder.started == [] and recorder.published == []


def test_a_start_that_lost_a_race_is_a_duplicate_naming_the_winner():
    recorder = Recorder(racing_winner="exec-first")
    starter = SagaStarter(Settings.from_env({}), executions=recorder, publisher=recorder)
    request = {"saga_id": "t-1", "steps": [{"name": "a", "execute_url": "http://localhost:1/"}]}
    result = starter.handle_event("m-1", event_data(request))
    assert (result.outcome, result.execution_name) == ("duplicate", "exec-first")
    assert recorder.published == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"message": {"messageId": "1"}}, "the message has no data (expected a JSON saga request)"),
        ({"message": {"messageId": "1", "data": 5}}, "the message data must be a base64 string"),
        ("not json", "the event data has no Pub/Sub message"),
    ],
)
def test_malformed_envelopes_are_invalid_requests(data, message):
    with pytest.raises(InvalidRequestError) as caught:
        decode_event("1", data)
    assert [e.message for e in caught.value.errors] == [message]


def test_an_envelope_delivered_as_json_text_is_read():
    text = json.dumps({"message": {"data": base64.b64encode(b"{}").decode(), "message_id": "9"}})
    assert decode_event(None, text).message_id == "9"


def resolving(table: dict[str, str]) -> Any:
    """A resolver in ``socket.getaddrinfo``'s shape answering from ``table``."""

    def resolve(host: str, port: int, family: int = 0, type: int = 0) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (table[host], port))]

    return resolve


def test_a_task_whose_callback_host_is_refused_fails_fast_naming_the_host(http_server, capsys):
    # The allowlist is restricted by port and does not list the Workflows callback host.
    settings = Settings.from_env({"SAGA_ALLOWED_HOSTS": "127.0.0.1:1"})
    task = body(http_server, f"http://localhost:{http_server.port}/cb")
    task["call"]["url"] = "http://127.0.0.1:1/undo"
    executor = StepExecutor(settings, secrets=NoSecrets(), tokens=StaticTokenSource(), http=HttpClient())
    reply = executor.handle(task, {"X-CloudTasks-TaskRetryCount": "0"})
    assert reply.status_code == 200  # Cloud Tasks stops: another try gets the same answer
    assert reply.body["outcome"] == "refused"
    assert http_server.requests == []
    entry = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert entry["severity"] == "ERROR"
    assert f"'localhost:{http_server.port}' is not on the allowlist" in entry["message"]
    assert entry["callback_host"] == "localhost"


def test_a_participant_whose_name_resolves_to_an_internal_address_is_reported_invalid_at_once(http_server):
    settings = Settings.from_env({"SAGA_ALLOWED_HOSTS": "*.example.com,127.0.0.1"})
    executor = StepExecutor(
        settings,
        secrets=NoSecrets(),
        tokens=StaticTokenSource(),
        http=HttpClient(),
        resolver=resolving({"pay.example.com": "10.0.0.1"}),
    )
    task = body(http_server, http_server.url("/cb"), max_attempts=5)
    task["call"]["url"] = "https://pay.example.com/undo"
    reply = executor.handle(task, {"X-CloudTasks-TaskRetryCount": "0"})
    assert reply.status_code == 200
    [report] = http_server.requests_to("/cb")
    error = json.loads(report.body)["error"]
    assert error["kind"] == "invalid"
    assert error["message"].startswith(
        "not called: host 'pay.example.com' resolves to 10.0.0.1, a private address"
    )
