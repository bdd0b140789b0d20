from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from saga_orchestrator.auth import StaticTokenSource
from saga_orchestrator.errors import InvalidRequestError
from saga_orchestrator.events import PubsubMessage, decode_result
from saga_orchestrator.executor import StepExecutor
from saga_orchestrator.model import SecretRef
from saga_orchestrator.settings import Settings
from saga_orchestrator.starter import SagaStarter, decode_event
from saga_orchestrator.testing import RecordingHttpServer, ScriptedResponse


class NoSecrets:
    def get(self, ref: SecretRef) -> str:
        raise AssertionError("no secret expected")


def executor() -> StepExecutor:
    return StepExecutor(Settings.from_env({}), secrets=NoSecrets(), tokens=StaticTokenSource())


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
    # max_attempts 2, but Cloud Tasks came back a third time because the last callback failed (500).
    http_server.script("/undo", ScriptedResponse(503, b""))
    reply = executor().handle(body(http_server, http_server.url("/cb")), {"x-cloudtasks-taskretrycount": "2"})
    assert reply.status_code == 200
    [report] = http_server.requests_to("/cb")
    assert json.loads(report.body)["error"]["kind"] == "exhausted"
    assert json.loads(report.body)["attempts"] == 3


def test_the_retry_count_header_is_read_case_insensitively(http_server):
    http_server.script("/undo", ScriptedResponse(503, b""))
    assert executor().handle(body(http_server, None), {"X-CloudTasks-TaskRetryCount": "0"}).status_code == 503
    assert executor().handle(body(http_server, None), {"X-Cloudtasks-Taskretrycount": "1"}).status_code == 200


def test_an_invalid_task_with_a_callback_is_reported_as_invalid(http_server):
    task = body(http_server, http_server.url("/cb"))
    task["action"] = "undo"
    reply = executor().handle(task, {})
    assert reply.status_code == 200
    [report] = http_server.requests_to("/cb")
    assert json.loads(report.body)["error"]["kind"] == "invalid"
    assert http_server.requests_to("/undo") == []


class Recorder:
    def __init__(self) -> None:
        self.started: list[Any] = []
        self.published: list[PubsubMessage] = []

    def find_execution(self, saga_id: str) -> str | None:
        return next((f"exec-{r.saga_id}" for r in self.started if r.saga_id == saga_id), None)

    def start(self, request: Any) -> str:
        self.started.append(request)
        return f"exec-{request.saga_id}"

    def publish(self, message: PubsubMessage) -> str:
        self.published.append(message)
        return str(len(self.published))


def event_data(request: Any, message_id: str = "m-1") -> dict[str, Any]:
    raw = base64.b64encode(json.dumps(request).encode()).decode()
    return {"message": {"data": raw, "messageId": message_id, "publishTime": "2026-11-25T22:00:00Z"}}


def test_the_starter_starts_then_dedupes_then_rejects():
    recorder = Recorder()
    starter = SagaStarter(Settings.from_env({}), starter=recorder, publisher=recorder)
    request = {"saga_id": "t-1", "steps": [{"name": "a", "execute_url": "http://localhost:1/"}]}
    assert starter.handle_event("m-1", event_data(request)).outcome == "started"
    assert starter.handle_event("m-1", event_data(request)).outcome == "duplicate"
    assert recorder.started[0].requested_at == "2026-11-25T22:00:00.000Z"
    result = starter.handle_event("m-2", {"no": "message"})
    assert result.outcome == "rejected"
    event = decode_result(recorder.published[0].data, recorder.published[0].attributes)
    assert [e.field for e in event.result.errors] == ["message"]


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
