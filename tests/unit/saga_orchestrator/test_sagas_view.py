"""The saga's own view (``saga_orchestrator.sagas``): its state from the execution, the step running and
the step entries; each step's progress; the undo plan; and the phases of every workflow step."""

from __future__ import annotations

import datetime
import pathlib
from typing import Any

import pytest
import yaml
from saga_orchestrator.console.cli import parse_since, show_text
from saga_orchestrator.errors import InvalidRequestError
from saga_orchestrator.ports import SagaStatus
from saga_orchestrator.sagas import (
    PHASES,
    PUBLISHING_STEPS,
    InFlight,
    describe,
    forward_iterations,
    in_flight,
    undo_plan,
)

SAGA_YAML = pathlib.Path(__file__).resolve().parents[3] / "workflows" / "saga_orchestrator.yaml"
EXECUTION = "projects/p/locations/l/workflows/w/executions/e-1"
ARGUMENT = {
    "steps": [
        {"name": "a", "compensate": {"url": "http://p/undo-a", "method": "POST", "payload": {"id": 1}}},
        {"name": "b", "compensate": None},
        {"name": "c", "compensate": {"url": "http://p/undo-c", "method": "DELETE", "payload": None}},
    ]
}


def main_steps(steps: list[Any]) -> list[str]:
    """Every step name of a steps list, nested ones included."""
    names = []
    for item in steps or []:
        ((name, body),) = item.items()
        names.append(name)
        if not isinstance(body, dict):
            continue
        nested = [body.get("steps"), (body.get("for") or {}).get("steps")]
        if isinstance(body.get("try"), dict):
            nested += [body["try"].get("steps"), (body.get("except") or {}).get("steps")]
        nested += [case.get("steps") for case in body.get("switch") or []]
        for inner in nested:
            names += main_steps(inner or [])
    return names


def test_every_step_of_main_has_one_phase() -> None:
    names = main_steps(yaml.safe_load(SAGA_YAML.read_text())["main"]["steps"])
    classified = [step for steps in PHASES.values() for step in steps] + list(PUBLISHING_STEPS)
    assert sorted(classified) == sorted(names)


def status(
    state: str = "ACTIVE", result: Any = None, current: tuple[tuple[str, str], ...] = ()
) -> SagaStatus:
    return SagaStatus(
        EXECUTION,
        state,
        result,
        saga_id="trip-1",
        current_step=current[-1] if current else None,
        current_steps=current,
    )


def entry(step: str, routine: str = "main", iteration: int | None = None) -> dict[str, Any]:
    meta = {"progressType": "PROGRESS_TYPE_FOR", "progressNumber": str(iteration)} if iteration else {}
    return {"routine": routine, "step": step, "stepEntryMetadata": meta}


def test_a_running_saga_has_the_steps_before_its_iteration_done_and_its_task_attempts() -> None:
    entries = [entry("init"), entry("execute_task", iteration=1), entry("execute_task", iteration=2)]
    flight = InFlight(1, "execute", 0, dispatches=3, responses=2, last_status="HTTP status code 503")
    view = describe(status(current=(("main", "execute_wait"),)), ARGUMENT, entries, flight)
    assert (view.state, view.execution_state) == ("running", "ACTIVE")
    assert [(s.name, s.status, s.attempts) for s in view.steps] == [
        ("a", "succeeded", None),
        ("b", "running", 3),
        ("c", "pending", None),
    ]
    assert view.steps[1].last_answer == "HTTP status code 503"
    assert [p["step"] for p in undo_plan(ARGUMENT, view)] == ["a"]  # b has no undo
    assert "if it failed now, it would undo, in this order:\n  a: POST http://p/undo-a" in show_text(
        view, undo_plan(ARGUMENT, view)
    )


def test_a_waiting_saga_is_stuck_or_parked_by_the_main_step_its_entries_name() -> None:
    waiting = (("await_decision", "wait_an_hour"),)  # Google names only the innermost step here
    parked = [
        entry("execute_task", iteration=2),
        entry("park_notice", iteration=2),
        entry("wait_an_hour", "await_decision"),
    ]
    assert describe(status(current=waiting), ARGUMENT, parked).state == "parked"
    stuck = [entry("backward"), entry("stuck_wait", iteration=1), entry("wait_an_hour", "await_decision")]
    assert describe(status(current=waiting), ARGUMENT, stuck).state == "stuck"
    # Publishing the result after undoing is still compensating; before any undo, running.
    assert (
        describe(status(current=(("main", "complete"),)), ARGUMENT, [entry("backward")]).state
        == "compensating"
    )
    assert describe(status(current=(("main", "complete"),)), ARGUMENT, []).state == "running"


def test_an_undo_in_flight_marks_the_later_steps_undone() -> None:
    entries = [entry("execute_task", iteration=3), entry("backward"), entry("compensate_wait", iteration=1)]
    flight = InFlight(0, "compensate", 0, dispatches=1, responses=0)
    view = describe(status(current=(("main", "compensate_wait"),)), ARGUMENT, entries, flight)
    assert view.state == "compensating"
    assert [(s.name, s.status) for s in view.steps] == [
        ("a", "compensating"),
        ("b", "compensated"),
        ("c", "failed"),
    ]


@pytest.mark.parametrize(
    ("state", "result", "expected"),
    [
        ("SUCCEEDED", {"status": "compensated", "steps": []}, "compensated"),
        ("SUCCEEDED", {"status": "succeeded", "steps": []}, "succeeded"),
        ("SUCCEEDED", {"status": "failed", "steps": []}, "failed"),
        ("FAILED", None, "failed"),
        ("CANCELLED", None, "failed"),
    ],
)
def test_an_ended_saga_has_its_results_state(state: str, result: Any, expected: str) -> None:
    assert describe(status(state, result), ARGUMENT).state == expected


def test_an_ended_saga_has_its_steps_from_the_result() -> None:
    record = {
        "name": "a",
        "status": "compensated",
        "execute": {"status": "succeeded", "attempts": 2, "error": None},
        "compensate": {
            "status": "failed",
            "attempts": 3,
            "error": {"kind": "transient", "status_code": 503, "message": "busy"},
        },
    }
    view = describe(status("SUCCEEDED", {"status": "compensated", "steps": [record]}), None)
    [step] = view.steps
    assert (step.status, step.action, step.attempts, step.last_answer) == (
        "compensated",
        "compensate",
        3,
        "transient 503 busy",
    )
    assert view.to_dict()["steps"][0]["attempts"] == 3


def test_the_pending_task_of_the_execution_is_found_by_its_name() -> None:
    names = [
        ("q/tasks/e-10-0-execute-0", 1, 1, None),  # another execution whose id starts alike
        ("q/tasks/e-1-2-execute-0", 1, 1, None),
        ("q/tasks/e-1-2-execute-1", 4, 3, "HTTP status code 503"),
    ]
    assert in_flight(names, "e-1") == InFlight(2, "execute", 1, 4, 3, "HTTP status code 503")
    assert in_flight([], "e-1") is None
    assert forward_iterations([entry("execute_task", iteration=1), entry("run_steps", iteration=2)]) == 2


def test_since_takes_a_duration_or_a_time() -> None:
    now = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.UTC)
    assert parse_since("90m", now) == now - datetime.timedelta(minutes=90)
    assert parse_since("2026-12-06T10:00:00Z") == datetime.datetime(2026, 12, 6, 10, 0, tzinfo=datetime.UTC)
    with pytest.raises(InvalidRequestError, match="--since"):
        parse_since("yesterday")
