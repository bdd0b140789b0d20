"""What an hour of waiting costs in the saga workflow itself (workflows/saga_orchestrator.yaml), measured on
the engine with a manual clock through the bench's replay (stand-ins for Cloud Tasks, the step executor
and the completion function): a call whose outcome stays outstanding for hours (Cloud Tasks retrying a
participant that is down) sleeps in hour-long waits, so its wait costs a few billable steps an hour, not a
wake-up every 30 s."""

from __future__ import annotations

import asyncio
from pathlib import Path

from saga_orchestrator.settings import Settings
from saga_orchestrator.validation import validate_request

from bench.saga import WaitRun, saga_request, waiting_hour

SAGA_YAML = Path(__file__).resolve().parents[3] / "workflows" / "saga_orchestrator.yaml"
URLS = {
    service: f"http://127.0.0.1:{port}"
    for service, port in (("flight", 9001), ("hotel", 9002), ("payment", 9003))
}
ENV = {
    "SAGA_STEP_EXECUTOR_URL": "http://127.0.0.1:8082",
    "SAGA_TASK_QUEUE_PATH": "projects/local-project/locations/us-central1/queues/saga-tasks",
    "SAGA_TASKS_INVOKER_EMAIL": "tasks-invoker@local-project.iam.gserviceaccount.com",
    "SAGA_DISPATCH_DEADLINE_SECONDS": "60",
}
FLIGHT = {"status": "succeeded", "output": {"booking_id": "B-1"}, "error": None, "attempts": 1}


def test_an_hour_on_an_outstanding_call_costs_a_few_steps_not_a_wake_every_30_seconds() -> None:
    argument = validate_request(saga_request(URLS, "wait-1", 3), Settings.from_env({})).to_argument()
    argument["deadline_seconds"] = 86400
    argument["steps"][1]["execute_wait_seconds"] = 86400  # the hotel's call stays outstanding for a day
    run = WaitRun("the hotel's call outstanding", argument, {("book_flight_0", "execute"): FLIGHT}, 30.0)
    per_hour = asyncio.run(waiting_hour(SAGA_YAML.read_text(), ENV, run, 3))
    # Each hour: the hour-long await (external), its wake, a 30 s await (external) and the bound check.
    assert per_hour["per_step"]["total"] <= 4.5 and per_hour["per_step"]["external"] <= 2.5
    assert per_hour["per_assignment"]["total"] <= 4.5
