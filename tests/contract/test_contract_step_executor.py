from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.http import ScriptedResponse

DATA = Path(__file__).parents[1] / "data"
SECRET_VALUE = "pk_live_do_not_log_me"


@pytest.fixture
def step_executor(make_client, local_cloud):
    local_cloud.add_secret_version("local-project", "payment-api-key", SECRET_VALUE.encode())
    return make_client("step_executor", "http")


@pytest.fixture
def task(participant, callback):
    """The Cloud Tasks request fixture, aimed at this test's participant and callback servers."""
    text = (DATA / "cloud-task-step-request.json").read_text()
    text = text.replace("PARTICIPANT", f"127.0.0.1:{participant.port}").replace(
        "CALLBACK", f"127.0.0.1:{callback.port}"
    )
    return json.loads(text)


def deliver(
    client: Any, task: dict[str, Any], executions: int = 0, body: Any = None, refusals: int = 0
) -> Any:
    """One dispatch after ``executions`` dispatches that reached step_executor and ``refusals`` that the
    platform answered 5xx itself (counted in TaskRetryCount only)."""
    headers = {
        **task["headers"],
        "X-CloudTasks-TaskRetryCount": str(executions + refusals),
        "X-CloudTasks-TaskExecutionCount": str(executions),
    }
    return client.post("/", headers=headers, data=json.dumps(task["body"] if body is None else body))


def reported(callback):
    requests = callback.requests
    assert len(requests) == 1, requests
    assert requests[0].headers["Authorization"] == "Bearer callback-access-token"
    assert requests[0].headers["Content-Type"] == "application/json"
    return json.loads(requests[0].body)


def test_a_successful_call_is_reported_and_answered_200(step_executor, task, participant, callback, capsys):
    participant.script("/payments/execute", ScriptedResponse(200, b'{"transaction_id": "tx-9"}'))
    response = deliver(step_executor, task)
    assert response.status_code == 200
    [call] = participant.requests_to("/payments/execute")
    assert json.loads(call.body) == {"action": "charge", "amount": 120, "booking": "b-77"}
    assert call.headers["X-Api-Key"] == SECRET_VALUE
    assert call.headers["Authorization"] == "Bearer participant-id-token"
    assert call.headers["Idempotency-Key"] == "trip-42:process_payment:execute"
    assert call.headers["X-Saga-Action"] == "execute"
    assert reported(callback) == {
        "status": "succeeded",
        "output": {"transaction_id": "tx-9"},
        "error": None,
        "attempts": 1,
        "step_index": 1,
        "action": "execute",
    }
    logs = capsys.readouterr().out
    assert SECRET_VALUE not in logs and "participant-id-token" not in logs
    entry = json.loads(logs.strip().splitlines()[-1])
    assert entry["logging.googleapis.com/labels"] == {"saga_id": "trip-42", "step": "process_payment"}
    assert entry["logging.googleapis.com/trace"].startswith("projects/local-project/traces/")


def test_a_business_failure_is_reported_without_retry(step_executor, task, participant, callback):
    participant.script("/payments/execute", ScriptedResponse(409, b'{"error": "card declined"}'))
    assert deliver(step_executor, task).status_code == 200
    assert reported(callback) == {
        "status": "failed",
        "output": None,
        "attempts": 1,
        "error": {"kind": "business", "status_code": 409, "message": 'HTTP 409: {"error": "card declined"}'},
        "step_index": 1,
        "action": "execute",
    }


def test_a_transient_failure_asks_cloud_tasks_to_retry_while_attempts_remain(
    step_executor, task, participant, callback
):
    participant.script("/payments/execute", ScriptedResponse(503, b"busy"))
    # 424, not 5xx: Cloud Tasks retries it and counts it in X-CloudTasks-TaskExecutionCount.
    assert deliver(step_executor, task, executions=0).status_code == 424
    # Dispatches the platform refused (5xx) before step_executor ran do not use up attempts.
    assert deliver(step_executor, task, executions=1, refusals=4).status_code == 424
    assert callback.requests == []
    # Third attempt of max_attempts=3: final, whatever the participant says.
    assert deliver(step_executor, task, executions=2, refusals=4).status_code == 200
    body = reported(callback)
    assert body["status"] == "failed" and body["attempts"] == 3
    assert body["error"]["kind"] == "exhausted" and body["error"]["status_code"] == 503
    assert len(participant.requests_to("/payments/execute")) == 3


def test_a_late_success_after_retries_reports_the_attempt_number(step_executor, task, participant, callback):
    participant.script("/payments/execute", ScriptedResponse(200, b'{"ok": true}'))
    assert deliver(step_executor, task, executions=1).status_code == 200
    assert reported(callback)["attempts"] == 2


def test_an_undeliverable_callback_after_a_call_answers_424_so_cloud_tasks_retries_and_counts_it(
    step_executor, task, participant, callback
):
    callback.script(task["body"]["callback_url"].split(str(callback.port), 1)[1], ScriptedResponse(503, b""))
    assert deliver(step_executor, task).status_code == 424
    assert len(participant.requests_to("/payments/execute")) == 1


def test_an_undeliverable_callback_without_a_call_answers_500_so_no_attempt_is_used(
    step_executor, task, participant, callback
):
    callback.script(task["body"]["callback_url"].split(str(callback.port), 1)[1], ScriptedResponse(503, b""))
    body = {**task["body"], "deadline": 1_000_000_000.0}  # 2001: long past, so nothing is called
    assert deliver(step_executor, task, body=body).status_code == 500
    assert participant.requests_to("/payments/execute") == []


def test_a_callback_to_an_ended_execution_is_final_so_cloud_tasks_stops(
    step_executor, task, participant, callback
):
    callback.script(task["body"]["callback_url"].split(str(callback.port), 1)[1], ScriptedResponse(404, b""))
    response = deliver(step_executor, task)
    assert response.status_code == 200
    assert response.get_json()["outcome"] == "unheard"


def test_a_host_off_the_allowlist_is_refused_even_inside_a_task(step_executor, task, participant, callback):
    body = task["body"]
    body["call"]["url"] = "http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/token"
    assert deliver(step_executor, task, body=body).status_code == 200
    report = reported(callback)
    assert report["status"] == "failed" and report["error"]["kind"] == "invalid"
    assert "metadata server or link-local" in report["error"]["message"]
    assert participant.requests == []


def test_a_missing_reference_is_reported_as_invalid(step_executor, task, participant, callback):
    body = task["body"]
    body["outputs"] = {}
    assert deliver(step_executor, task, body=body).status_code == 200
    report = reported(callback)
    assert report["error"] == {
        "kind": "invalid",
        "status_code": None,
        "message": "$ref 'steps.create_booking.output.booking_id': step 'create_booking' has no output here (it has not succeeded before this call)",
    }
    assert participant.requests == []


def test_a_missing_secret_is_reported_as_invalid(step_executor, task, participant, callback):
    body = task["body"]
    body["call"]["secret_headers"] = {"X-Api-Key": {"secret": "no-such-secret", "version": "latest"}}
    assert deliver(step_executor, task, body=body).status_code == 200
    assert reported(callback)["error"]["kind"] == "invalid"
    assert participant.requests == []


def test_a_callback_url_off_the_allowlist_gets_no_token(step_executor, task, participant, callback):
    body = task["body"]
    body["callback_url"] = "https://collector.evil.test/steal"
    assert deliver(step_executor, task, body=body).status_code == 200
    assert participant.requests == [] and callback.requests == []


def test_a_body_that_is_not_a_task_is_answered_200_so_it_is_not_retried(step_executor):
    response = step_executor.post("/", data=b"not json", headers={"User-Agent": "Google-Cloud-Tasks"})
    assert response.status_code == 200
    assert response.get_json()["outcome"] == "refused"


def test_the_task_manager_envelope_runs_without_a_callback(step_executor, participant):
    envelope = {
        "saga_id": "tasks",
        "step_name": "order-1",
        "action": "execute",
        "call": {
            "url": participant.url("/api"),
            "payload": {"data": "value"},
            "auth": "none",
            "max_attempts": 2,
        },
        "callback_url": None,
    }
    participant.script("/api", ScriptedResponse(500, b""))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Google-Cloud-Tasks",
        "X-CloudTasks-TaskRetryCount": "0",
        "X-CloudTasks-TaskExecutionCount": "0",
    }
    assert step_executor.post("/", headers=headers, data=json.dumps(envelope)).status_code == 424
    headers["X-CloudTasks-TaskRetryCount"] = "3"  # two refusals by the platform in between
    headers["X-CloudTasks-TaskExecutionCount"] = "1"
    response = step_executor.post("/", headers=headers, data=json.dumps(envelope))
    assert response.status_code == 200
    assert response.get_json() == {"outcome": "final", "result": "failed", "attempts": 2}
    assert [json.loads(r.body) for r in participant.requests_to("/api")] == [{"data": "value"}] * 2


def test_an_execute_after_the_saga_deadline_is_reported_without_calling(
    step_executor, task, participant, callback
):
    participant.script("/payments/execute", ScriptedResponse(200, b'{"ok": true}'))
    body = {**task["body"], "deadline": 1_000_000_000.0}  # 2001: long past
    assert deliver(step_executor, task, body=body).status_code == 200
    assert participant.requests_to("/payments/execute") == []
    report = reported(callback)
    assert report["status"] == "failed" and report["error"]["kind"] == "deadline"


def test_a_transient_failure_past_the_deadline_is_final(step_executor, task, participant, callback):
    # The deadline passes while the participant is still answering.
    participant.script("/payments/execute", ScriptedResponse(503, b"busy", delay_seconds=0.2))
    body = {**task["body"], "deadline": time.time() + 0.1}
    assert deliver(step_executor, task, body=body).status_code == 200
    report = reported(callback)
    assert report["error"]["kind"] == "deadline" and report["attempts"] == 1


def test_a_compensation_runs_whatever_the_deadline(step_executor, task, participant, callback):
    participant.script("/payments/execute", ScriptedResponse(200, b'{"ok": true}'))
    body = {**task["body"], "action": "compensate", "deadline": 1_000_000_000.0}
    assert deliver(step_executor, task, body=body).status_code == 200
    assert len(participant.requests_to("/payments/execute")) == 1
    assert reported(callback)["status"] == "succeeded"


def test_compensating_a_step_of_unknown_outcome_still_calls_the_participant(
    step_executor, task, participant, callback
):
    participant.script("/payments/compensate", ScriptedResponse(200, b"{}"))
    body = task["body"]
    body["action"] = "compensate"
    body["call"] = {
        **body["call"],
        "url": body["call"]["url"].replace("/execute", "/compensate"),
        "payload": {"transaction_id": {"$ref": f"steps.{body['step_name']}.output.transaction_id"}},
    }
    body["outputs"] = {}
    assert deliver(step_executor, task, body=body).status_code == 200
    [call] = participant.requests_to("/payments/compensate")
    assert json.loads(call.body) == {"transaction_id": None}
    assert reported(callback)["status"] == "succeeded"
