"""What a saga's result and the stack's records say about its run: where its time went, the actions it
called, the billable steps its execution counted."""

from __future__ import annotations

import datetime
import json
import statistics
import time
import urllib.request
from collections.abc import Mapping
from typing import Any

from devstack.stack import LocalStack


def epoch(stamp: Any) -> float | None:
    if not isinstance(stamp, str) or not stamp:
        return None
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def phases(result: Mapping[str, Any], published_wall: float, received_wall: float) -> dict[str, float]:
    """Where one saga's time went, from the timestamps in its result (all processes share this clock):
    ``to_start`` publish → execution started (Pub/Sub push, start_saga, Executions API), ``actions`` the
    sum of its actions (Cloud Task create → step_executor → participant → callback received), ``between``
    the rest of the execution (the workflow's own steps), ``to_outcome`` execution finished → outcome
    received (saga_completion, publish, streaming pull)."""
    started = epoch(result.get("started_at"))
    finished = epoch(result.get("finished_at"))
    if started is None or finished is None:
        return {}
    actions = 0.0
    for step in result.get("steps") or []:
        for key in ("execute", "compensate"):
            action = step.get(key) or {}
            begin, end = epoch(action.get("started_at")), epoch(action.get("finished_at"))
            if begin is not None and end is not None:
                actions += end - begin
    return {
        "to_start": started - published_wall,
        "actions": actions,
        "between": (finished - started) - actions,
        "to_outcome": received_wall - finished,
    }


def action_split(stack: LocalStack, sagas: list[dict[str, Any]]) -> dict[str, float]:
    """Each action of these sagas split at the moment the participant recorded the call: ``dispatch``
    (workflow creates the callback and the Cloud Task → Tasks dispatches → step_executor verifies, reads
    secrets, calls the participant → participant answers) and ``report`` (step_executor posts the callback →
    the workflow records it)."""
    answered: dict[tuple[str, str, str], float] = {}
    for service in ("flight", "hotel", "payment"):
        for call in stack.participant_calls(service):
            key = (str(call.get("saga_id")), str(call.get("step")), str(call.get("action")))
            answered.setdefault(key, float(call.get("at") or 0.0))
    dispatch: list[float] = []
    report: list[float] = []
    for result in sagas:
        for step in result.get("steps") or []:
            action = step.get("execute") or {}
            begin, end = epoch(action.get("started_at")), epoch(action.get("finished_at"))
            at = answered.get((str(result.get("saga_id")), str(step.get("name")), "execute"))
            if begin is None or end is None or at is None:
                continue
            dispatch.append(at - begin)
            report.append(end - at)
    if not dispatch:
        return {}
    return {
        "actions": len(dispatch),
        "dispatch": round(statistics.median(dispatch) * 1000, 2),
        "report": round(statistics.median(report) * 1000, 2),
    }


def actions_of(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The actions (executes and compensations) a saga result records as called."""
    return [
        step[key]
        for step in result.get("steps") or []
        for key in ("execute", "compensate")
        if isinstance(step.get(key), dict) and step[key].get("status") not in (None, "skipped")
    ]


def billable_after_end(stack: LocalStack, execution: str) -> tuple[dict[str, int], dict[str, int]]:
    """Billable steps (one per step; one per assignment) once the execution has ended."""
    # The result is published by saga_completion before the execution's last step (return) has run.
    deadline = time.monotonic() + 10
    last: tuple[dict[str, int], dict[str, int]] = ({}, {})
    while time.monotonic() < deadline:
        execution_id = execution.rsplit("/", 1)[-1]
        url = f"http://{stack.config.workflows_http}/admin/executions/{execution_id}"
        with urllib.request.urlopen(url, timeout=10) as response:
            view = json.loads(response.read())
        per_step, per_assignment = (
            {k: int((view.get(key) or {}).get(k, 0)) for k in ("internal", "external", "total")}
            for key in ("billableSteps", "billableStepsPerAssignment")
        )
        last = (per_step, per_assignment)
        if view.get("state") != "ACTIVE":
            return last
        time.sleep(0.02)
    return last
