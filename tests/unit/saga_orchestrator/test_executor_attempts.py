"""How step_executor numbers attempts: from ``X-CloudTasks-TaskExecutionCount``, which Cloud Tasks raises
only for a dispatch answered below 500, so that dispatches the platform refused before step_executor ran
(a 5xx of its own) use no attempt, and every dispatch that called the participant answers below 500.

``CloudTasksCounts`` keeps the two counters as Google documents them
(https://cloud.google.com/tasks/docs/creating-http-target-tasks#handler) and plays a task's dispatches
against the real executor and a real participant server."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from saga_orchestrator.executor import RETRY_STATUS, Reply, attempt_number

from tests.support.executor import plain_executor
from tests.support.http import RecordingHttpServer, ScriptedResponse

REFUSED = "refused"  # a dispatch the platform answers itself with a 5xx: it never reaches step_executor
CALLED = "called"


def task(server: RecordingHttpServer, *, max_attempts: int = 3, callback: bool = True) -> dict[str, Any]:
    return {
        "saga_id": "trip-7",
        "step_name": "reserve_hotel",
        "action": "execute",
        "call": {"url": server.url("/reserve"), "auth": "none", "max_attempts": max_attempts},
        "callback_url": server.url("/cb") if callback else None,
        "outputs": {},
    }


@dataclass
class CloudTasksCounts:
    """One task's counters: ``retries`` counts every previous dispatch, ``executions`` those answered
    below 500; ``previous`` is the status of the previous dispatch."""

    retries: int = 0
    executions: int = 0
    previous: int | None = None

    def headers(self) -> dict[str, str]:
        headers = {
            "X-CloudTasks-TaskRetryCount": str(self.retries),
            "X-CloudTasks-TaskExecutionCount": str(self.executions),
        }
        if self.previous is not None:
            headers["X-CloudTasks-TaskPreviousResponse"] = str(self.previous)
            headers["X-CloudTasks-TaskRetryReason"] = ""
        return headers

    def answered(self, status: int) -> None:
        self.retries += 1
        self.executions += 1 if status < 500 else 0
        self.previous = status


def play(body: dict[str, Any], dispatches: list[str], counts: CloudTasksCounts | None = None) -> list[Reply]:
    """Dispatch ``body`` as Cloud Tasks would until a 2xx ends the task; each ``REFUSED`` entry is a
    dispatch the platform answers 503 itself. Returns step_executor's replies."""
    counts = counts or CloudTasksCounts()
    replies: list[Reply] = []
    for dispatch in dispatches:
        if dispatch == REFUSED:
            counts.answered(503)
            continue
        reply = plain_executor().handle(body, counts.headers())
        replies.append(reply)
        if 200 <= reply.status_code < 300:
            return replies
        counts.answered(reply.status_code)
    raise AssertionError(f"the task did not end within {dispatches}: {[r.status_code for r in replies]}")


def reports(server: RecordingHttpServer) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in server.requests_to("/cb")]


@pytest.mark.parametrize(
    "dispatches",
    [
        [CALLED] * 3,
        [REFUSED, REFUSED, CALLED, CALLED, CALLED],
        [REFUSED, CALLED, REFUSED, REFUSED, CALLED, REFUSED, CALLED],
        [CALLED, *[REFUSED] * 10, CALLED, CALLED],
    ],
    ids=["no-refusal", "refused-first", "refused-between", "refused-ten-times"],
)
def test_a_step_that_always_fails_is_called_exactly_max_attempts_times_whatever_the_platform_refuses(
    http_server: RecordingHttpServer, dispatches: list[str]
) -> None:
    http_server.script("/reserve", ScriptedResponse(503, b"busy"))
    replies = play(task(http_server), dispatches)

    assert [r.status_code for r in replies] == [RETRY_STATUS, RETRY_STATUS, 200]
    assert [r.body.get("attempt") for r in replies[:2]] == [1, 2]
    assert len(http_server.requests_to("/reserve")) == 3
    [report] = reports(http_server)
    assert (report["status"], report["attempts"]) == ("failed", 3)
    assert (report["error"]["kind"], report["error"]["status_code"]) == ("exhausted", 503)
    assert report["error"]["message"].startswith("3 attempts failed")


def test_a_success_after_refusals_reports_the_calls_made(http_server: RecordingHttpServer) -> None:
    http_server.script("/reserve", ScriptedResponse(503, b"busy"), ScriptedResponse(200, b'{"id": "HT-1"}'))
    replies = play(task(http_server, max_attempts=5), [REFUSED, CALLED, REFUSED, REFUSED, CALLED])
    assert [r.status_code for r in replies] == [RETRY_STATUS, 200]
    [report] = reports(http_server)
    assert (report["status"], report["attempts"], report["output"]) == ("succeeded", 2, {"id": "HT-1"})


def test_an_undelivered_report_counts_its_call_and_the_next_dispatch_calls_again_under_the_next_number(
    http_server: RecordingHttpServer,
) -> None:
    http_server.script("/reserve", ScriptedResponse(200, b'{"id": "HT-2"}'))
    http_server.script("/cb", ScriptedResponse(503, b""), ScriptedResponse(200, b"{}"))
    replies = play(task(http_server), [CALLED, REFUSED, CALLED])

    assert [(r.status_code, r.body["outcome"]) for r in replies] == [
        (RETRY_STATUS, "callback_failed"),
        (200, "reported"),
    ]
    calls = http_server.requests_to("/reserve")
    assert len(calls) == 2  # the second call replays the first: same key, no second effect
    assert {c.headers["Idempotency-Key"] for c in calls} == {"trip-7:reserve_hotel:execute"}
    assert [r["attempts"] for r in reports(http_server)] == [1, 2]


def test_a_dispatch_that_calls_nobody_answers_500_and_uses_no_attempt(
    http_server: RecordingHttpServer,
) -> None:
    # Past the saga deadline an execute is not called; its report fails, so Cloud Tasks must retry, and
    # the retry must still report the calls made before (2), not one more.
    http_server.script("/cb", ScriptedResponse(503, b""), ScriptedResponse(200, b"{}"))
    body = {**task(http_server), "deadline": 1_000_000_000.0}
    counts = CloudTasksCounts(retries=4, executions=2, previous=RETRY_STATUS)
    replies = play(body, [CALLED, CALLED], counts)

    assert [r.status_code for r in replies] == [500, 200]
    assert http_server.requests_to("/reserve") == []
    assert [(r["error"]["kind"], r["attempts"]) for r in reports(http_server)] == [("deadline", 2)] * 2


def test_the_task_manager_envelope_counts_the_same_way_without_a_callback(
    http_server: RecordingHttpServer,
) -> None:
    http_server.script("/reserve", ScriptedResponse(500, b""))
    replies = play(task(http_server, max_attempts=2, callback=False), [REFUSED, CALLED, REFUSED, CALLED])
    assert [r.status_code for r in replies] == [RETRY_STATUS, 200]
    assert replies[-1].body == {"outcome": "final", "result": "failed", "attempts": 2}
    assert len(http_server.requests_to("/reserve")) == 2


def test_a_previous_answer_below_500_from_the_platform_is_logged_and_not_subtracted(
    http_server: RecordingHttpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    http_server.script("/reserve", ScriptedResponse(503, b"busy"))
    counts = CloudTasksCounts(retries=2, executions=2, previous=429)
    reply = plain_executor().handle(task(http_server, max_attempts=5), counts.headers())
    assert reply.body["attempt"] == 3  # Cloud Tasks may have counted the 429: the header is kept as is
    warnings = [
        e for e in map(json.loads, capsys.readouterr().out.splitlines()) if e["severity"] == "WARNING"
    ]
    [warning] = warnings
    assert warning["previous_response"] == 429 and warning["attempt"] == 3
    assert "HTTP 429 before it reached step_executor" in warning["message"]
    assert warning["logging.googleapis.com/labels"] == {"saga_id": "trip-7", "step": "reserve_hotel"}


@pytest.mark.parametrize("previous", [RETRY_STATUS, 500, 503])
def test_a_previous_answer_of_the_executor_or_a_5xx_is_not_warned_about(
    http_server: RecordingHttpServer, capsys: pytest.CaptureFixture[str], previous: int
) -> None:
    http_server.script("/reserve", ScriptedResponse(503, b"busy"))
    counts = CloudTasksCounts(retries=1, executions=1 if previous < 500 else 0, previous=previous)
    plain_executor().handle(task(http_server, max_attempts=5), counts.headers())
    entries = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e for e in entries if e["severity"] == "WARNING"] == []


@pytest.mark.parametrize(
    ("headers", "attempt"),
    [
        ({}, 1),
        ({"X-CloudTasks-TaskRetryCount": "7"}, 1),
        ({"X-CloudTasks-TaskRetryCount": "7", "X-CloudTasks-TaskExecutionCount": "2"}, 3),
        ({"x-cloudtasks-taskexecutioncount": "4"}, 5),
        ({"X-CloudTasks-TaskExecutionCount": "not a number"}, 1),
        ({"X-CloudTasks-TaskExecutionCount": "-3"}, 1),
    ],
)
def test_the_attempt_number_is_the_execution_count_plus_one(headers: dict[str, str], attempt: int) -> None:
    assert attempt_number(headers) == attempt
