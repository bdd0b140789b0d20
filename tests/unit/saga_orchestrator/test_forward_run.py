"""The forward run (saga_orchestrator.forward): the real step executor makes the first attempt of each step
in turn against a real participant server, and answers what the workflow needs to finish the saga or take
over from the first step that did not succeed."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from saga_orchestrator.executor import RETRY_STATUS
from saga_orchestrator.forward import Forward, is_forward_run

from tests.support.executor import plain_executor
from tests.support.http import RecordingHttpServer, ScriptedResponse
from tests.unit.saga_orchestrator.test_executor_attempts import CloudTasksCounts


def step(
    server: RecordingHttpServer, name: str, *, refs: tuple[str, ...] = (), undo: bool = True
) -> dict[str, Any]:
    call = {"url": server.url(f"/{name}"), "auth": "none", "max_attempts": 3}
    if refs:
        call["payload"] = {"from": {"$ref": f"steps.{refs[0]}.output.id"}}
    return {
        "name": name,
        "execute": call,
        "compensate": {"url": server.url(f"/undo-{name}"), "auth": "none"} if undo else None,
        "execute_refs": list(refs),
        "max_output_bytes": 1000,
    }


def run_body(server: RecordingHttpServer, *steps: dict[str, Any], deadline: float = 4e9) -> dict[str, Any]:
    return {
        "run": "forward",
        "saga_id": "trip-9",
        "execution": "projects/p/locations/l/workflows/w/executions/e-1",
        "execution_id": "e-1",
        "steps": list(steps),
        "deadline": deadline,
        "started_at": "2026-12-06T10:00:00.000Z",
        "metadata": {"customer": "c-1"},
    }


def backward_body(answer: dict[str, Any], steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The backward run's request, as the workflow builds it from the forward run's answer."""
    return {**{k: v for k, v in answer.items() if k != "undo"}, **answer["undo"], "steps": steps}


def forward(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    assert is_forward_run(body)
    return Forward(plain_executor()).handle(body)


def test_every_step_succeeding_answers_the_completion_body(http_server: RecordingHttpServer) -> None:
    http_server.script("/a", ScriptedResponse(200, b'{"id": "A-1"}'))
    http_server.script("/b", ScriptedResponse(200, b'{"id": "B-1"}'))
    status, answer = forward(
        run_body(http_server, step(http_server, "a"), step(http_server, "b", refs=("a",)))
    )
    assert (status, answer["next"]) == (200, 2)
    completion = answer["completion"]
    assert (completion["status"], completion["cause"], completion["uncompensated_steps"]) == (
        "succeeded",
        None,
        [],
    )
    assert completion["execution"] == "projects/p/locations/l/workflows/w/executions/e-1"
    assert completion["outputs"] == {"a": {"id": "A-1"}, "b": {"id": "B-1"}}
    assert [(r["name"], r["status"], r["execute"]["attempts"]) for r in completion["steps"]] == [
        ("a", "succeeded", 1),
        ("b", "succeeded", 1),
    ]
    assert "output" not in completion["steps"][0]["execute"]  # kept once, beside the records
    # b's call got a's output through its reference; each call carried the step's Idempotency-Key.
    [called_b] = http_server.requests_to("/b")
    assert json.loads(called_b.body) == {"from": "A-1"}
    assert called_b.headers["Idempotency-Key"] == "trip-9:b:execute"


def test_an_output_over_its_budget_stops_the_run_with_its_answer_and_the_state_before_it(
    http_server: RecordingHttpServer,
) -> None:
    # Its effect happened, so the workflow undoes it too, first: left to the workflow, nothing undone here.
    http_server.script("/a", ScriptedResponse(200, b'{"id": "A-1"}'))
    http_server.script("/b", ScriptedResponse(200, json.dumps({"blob": "x" * 2000}).encode()))
    status, answer = forward(
        run_body(http_server, step(http_server, "a"), step(http_server, "b"), step(http_server, "c"))
    )
    assert (status, answer["next"], answer["attempts"]) == (200, 1, 1)
    assert (answer["reply"]["status"], answer["reply"]["error"]["kind"]) == ("failed", "output_too_large")
    assert (answer["reply"]["step_index"], answer["reply"]["action"]) == (1, "execute")
    assert [r["name"] for r in answer["records"]] == ["a"]
    assert (answer["outputs"], answer["done"]) == ({"a": {"id": "A-1"}}, [0])
    assert http_server.requests_to("/c") == []
    assert http_server.requests_to("/undo-a") == []


def test_a_transient_first_attempt_is_handed_to_its_task_which_counts_it(
    http_server: RecordingHttpServer,
) -> None:
    http_server.script("/a", ScriptedResponse(200, b'{"id": "A-1"}'))
    http_server.script("/b", ScriptedResponse(503, b"busy"))
    _, answer = forward(run_body(http_server, step(http_server, "a"), step(http_server, "b", refs=("a",))))
    assert (answer["next"], answer["reply"], answer["attempts"]) == (1, None, 1)
    assert answer["picked"] == {"a": {"id": "A-1"}}  # what b's task body carries
    # b's task, created with attempts_before 1: the participant, always busy, is called exactly 3 times.
    task = {
        "saga_id": "trip-9",
        "step_name": "b",
        "action": "execute",
        "call": step(http_server, "b", refs=("a",))["execute"],
        "callback_url": http_server.url("/cb"),
        "outputs": answer["picked"],
        "attempts_before": answer["attempts"],
    }
    counts = CloudTasksCounts()
    replies = []
    for _ in range(3):
        reply = plain_executor().handle(task, counts.headers())
        replies.append(reply.status_code)
        if reply.status_code == 200:
            break
        counts.answered(reply.status_code)
    assert replies == [RETRY_STATUS, 200]
    assert len(http_server.requests_to("/b")) == 3
    [report] = [json.loads(r.body) for r in http_server.requests_to("/cb")]
    assert (report["status"], report["attempts"], report["error"]["kind"]) == ("failed", 3, "exhausted")


def test_a_success_that_ends_past_the_saga_deadline_is_handed_over_and_no_later_step_is_called(
    http_server: RecordingHttpServer,
) -> None:
    http_server.script("/a", ScriptedResponse(200, b'{"id": "A-1"}'))
    first = step(http_server, "a")
    first["execute"]["timeout_seconds"] = 1
    now = time.time()
    ticks = iter([now, now, now + 100])  # the call ends after the deadline
    run = Forward(plain_executor(), clock=lambda: next(ticks))
    _, answer = run.handle(run_body(http_server, first, step(http_server, "b"), deadline=now + 30))
    # The workflow records it and ends the saga there (cause "deadline"), as its callback would have.
    assert (answer["next"], answer["reply"]["status"], answer["reply"]["output"]) == (
        0,
        "succeeded",
        {"id": "A-1"},
    )
    assert answer["records"] == []
    assert http_server.requests_to("/b") == []


def test_no_step_starts_once_the_run_has_used_its_time(http_server: RecordingHttpServer) -> None:
    http_server.script("/a", ScriptedResponse(200, b'{"id": "A-1"}'))
    ticks = iter([0.0, 0.0, 31.0])
    executor = plain_executor()
    run = Forward(executor, monotonic=lambda: next(ticks))
    _, answer = run.handle(run_body(http_server, step(http_server, "a"), step(http_server, "b")))
    assert (answer["next"], answer["reply"], answer["attempts"]) == (1, None, 0)
    assert http_server.requests_to("/b") == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"saga_id": None}, "saga_id"),
        ({"steps": []}, "steps"),
        ({"deadline": "soon"}, "deadline"),
        (
            {"steps": [{"name": "a", "execute": {"url": "http://metadata.google.internal/x"}}]},
            "steps[0].execute",
        ),
    ],
)
def test_an_invalid_run_is_refused_naming_the_field(
    http_server: RecordingHttpServer, change: dict[str, Any], field: str
) -> None:
    status, answer = forward({**run_body(http_server, step(http_server, "a")), **change})
    assert status == 400
    assert any(error["field"].startswith(field) for error in answer["errors"]), answer


@pytest.mark.parametrize(("running", "called"), [(False, 0), (True, 1), (None, 1)])
def test_a_step_starting_a_second_or_more_into_the_run_first_checks_the_execution_still_runs(
    http_server: RecordingHttpServer, running: bool | None, called: int
) -> None:
    http_server.script_default(ScriptedResponse(200, b'{"id": "X-1"}'))
    checked: list[str] = []

    def still_running(execution: str) -> bool:
        checked.append(execution)
        if running is None:
            raise RuntimeError("permission denied")  # unreadable: the run goes on
        return running

    # The run begins, step a starts at once (checked: no), step b 1.5 s in (checked: yes).
    ticks = [0.0, 0.0, 0.0, 1.5]
    run = Forward(
        plain_executor(),
        running=still_running,
        monotonic=lambda: ticks.pop(0) if len(ticks) > 1 else ticks[0],
    )
    _, answer = run.handle(run_body(http_server, step(http_server, "a"), step(http_server, "b")))
    assert checked == ["projects/p/locations/l/workflows/w/executions/e-1"]  # before b only
    assert len(http_server.requests_to("/b")) == called
    assert answer["next"] == (2 if called else 1)


def test_a_call_that_could_outlast_the_saga_deadline_is_left_to_its_task(
    http_server: RecordingHttpServer,
) -> None:
    # Its task's wait decides the outcome at the deadline (unknown while the call still runs).
    body = run_body(http_server, step(http_server, "a"), deadline=time.time() + 5)
    _, answer = Forward(plain_executor()).handle(body)
    assert (answer["next"], answer["reply"], answer["attempts"]) == (0, None, 0)
    assert http_server.requests_to("/a") == []


def test_a_declined_step_has_the_done_steps_undone_in_reverse_and_answers_the_compensated_saga(
    http_server: RecordingHttpServer,
) -> None:
    for name in ("a", "b"):
        http_server.script(f"/{name}", ScriptedResponse(200, b'{"id": "X-1"}'))
        http_server.script(f"/undo-{name}", ScriptedResponse(200, b'{"undone": true}'))
    http_server.script("/c", ScriptedResponse(409, b"card declined"))
    steps = [step(http_server, "a"), step(http_server, "b"), step(http_server, "c"), step(http_server, "d")]
    _, answer = forward(run_body(http_server, *steps))
    # The forward run hands over c's failure with the request of the backward run; nothing undone yet.
    assert (answer["next"], answer["reply"]["error"]["kind"], answer["undo"]["run"]) == (
        2,
        "business",
        "backward",
    )
    assert [r.path for r in http_server.requests if r.path.startswith("/undo-")] == []
    _, answer = forward(backward_body(answer, steps))
    completion = answer["completion"]
    assert (completion["status"], completion["cause"], completion["failed_step"]) == (
        "compensated",
        "step_failed",
        "c",
    )
    assert "card declined" in completion["reason"]
    assert [(r["name"], r["status"]) for r in completion["steps"]] == [
        ("a", "compensated"),
        ("b", "compensated"),
        ("c", "failed"),
        ("d", "not_run"),
    ]
    assert completion["steps"][1]["compensate"]["output"] == {"undone": True}
    order = [r.path for r in http_server.requests if r.path.startswith("/undo-")]
    assert order == ["/undo-b", "/undo-a"]
    assert http_server.requests_to("/undo-b")[0].headers["Idempotency-Key"] == "trip-9:b:compensate"


def test_an_undo_that_fails_hands_over_the_undos_left_and_its_attempt(
    http_server: RecordingHttpServer,
) -> None:
    for name in ("a", "b"):
        http_server.script(f"/{name}", ScriptedResponse(200, b'{"id": "X-1"}'))
    http_server.script("/undo-b", ScriptedResponse(200, b"{}"))
    http_server.script("/undo-a", ScriptedResponse(503, b"busy"))
    http_server.script("/c", ScriptedResponse(409, b"card declined"))
    steps = [step(http_server, "a"), step(http_server, "b"), step(http_server, "c")]
    _, forwarded = forward(run_body(http_server, *steps))
    _, answer = forward(backward_body(forwarded, steps))
    assert (answer["next"], answer["reply"]["error"]["kind"], "undo" in answer) == (2, "business", False)
    # b was undone here; a is left to the workflow, whose task counts this attempt.
    assert answer["done"] == [0]
    assert answer["undo_attempts"] == {"a": 1}
    assert [(r["name"], r["status"]) for r in answer["records"]] == [("a", "succeeded"), ("b", "compensated")]


def test_a_parking_step_that_fails_is_left_to_the_workflow_with_nothing_undone(
    http_server: RecordingHttpServer,
) -> None:
    http_server.script("/a", ScriptedResponse(200, b'{"id": "X-1"}'))
    http_server.script("/b", ScriptedResponse(409, b"no rooms"))
    parking = {**step(http_server, "b"), "on_failure": "park"}
    _, answer = forward(run_body(http_server, step(http_server, "a"), parking))
    assert (answer["next"], answer["done"], "undo" in answer) == (1, [0], False)
    assert http_server.requests_to("/undo-a") == []


def test_a_first_step_declined_with_nothing_done_ends_the_saga_compensated_at_once(
    http_server: RecordingHttpServer,
) -> None:
    http_server.script("/a", ScriptedResponse(409, b"sold out"))
    _, answer = forward(run_body(http_server, step(http_server, "a"), step(http_server, "b")))
    completion = answer["completion"]
    assert (completion["status"], completion["failed_step"]) == ("compensated", "a")
    assert "sold out" in completion["reason"]
    assert [(r["name"], r["status"]) for r in completion["steps"]] == [("a", "failed"), ("b", "not_run")]
