"""LocalStack: ports, sample requests, and (once every emulator exists) the whole stack up and down."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from saga_orchestrator.settings import Settings
from saga_orchestrator.validation import validate_request

from devstack.processes import ProcessError
from devstack.settings import DEFAULT_PATH, DeploymentSettings
from devstack.stack import EXAMPLES_DIR, LocalStack, StackPorts, missing_components
from devstack.up import describe, format_result, publish_snippet
from devstack.up import main as up_main

SETTINGS = DeploymentSettings.load(DEFAULT_PATH, env={})


def test_resolved_ports_are_distinct_and_keep_fixed_ones() -> None:
    ports = StackPorts(flight=9001).resolved()
    values = [getattr(ports, name) for name in ports.__dataclass_fields__]
    assert ports.flight == 9001 and 0 not in values and len(set(values)) == len(values)


def test_well_known_ports_are_the_documented_defaults_and_the_sample_origins() -> None:
    ports = StackPorts.well_known()
    assert (ports.pubsub, ports.tasks, ports.secretmanager, ports.metadata) == (8085, 8123, 8090, 8089)
    assert (ports.workflows, ports.workflows_http) == (8788, 8787)
    assert (ports.flight, ports.hotel, ports.payment) == (9001, 9002, 9003)


def test_the_ports_the_emulators_take_beside_the_well_known_ones_are_checked_too() -> None:
    assert StackPorts.well_known().companion_ports() == {
        "bigquery": 8093,
        "resourcemanager": 8097,
        "pubsub_rest": 8095,
        "tasks_rest": 8124,
        "secretmanager_rest": 8096,
        "resourcemanager_rest": 8098,
    }
    assert StackPorts().companion_ports() == {}  # free ports: nothing fixed beside them


def test_launch_refuses_ports_in_use_before_starting_anything(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(ProcessError, match=f"flight={port}"):
            LocalStack.launch(StackPorts(flight=port), settings=SETTINGS, log_dir=tmp_path)
    assert not list(tmp_path.iterdir())


def test_sample_requests_are_valid_and_point_at_the_stack_participants(tmp_path: Path) -> None:
    stack = LocalStack(settings=SETTINGS, ports=StackPorts().resolved(), log_dir=tmp_path, echo=None)
    names = sorted(p.stem for p in EXAMPLES_DIR.glob("*.json"))
    assert names == ["payment-declined", "transient-failures", "trip-succeeds"]
    for name in names:
        request = stack.example_request(name, saga_id=f"t-{name}")
        validated = validate_request(request, Settings.from_env({}))
        assert validated.saga_id == f"t-{name}"
        for step in validated.steps:
            assert step.execute.url.startswith(tuple(stack.participant_urls.values()))


def test_the_rich_samples_carry_the_payment_secret_and_a_compensation_ref() -> None:
    request = json.loads((EXAMPLES_DIR / "trip-succeeds.json").read_text())
    payment = next(s for s in request["steps"] if s["name"] == "charge_payment")
    assert payment["execute"]["secret_headers"] == {"X-Api-Key": "payment-api-key"}
    flight = next(s for s in request["steps"] if s["name"] == "book_flight")
    assert flight["compensate"]["payload"]["booking_id"] == {"$ref": "steps.book_flight.output.booking_id"}
    declined = json.loads((EXAMPLES_DIR / "payment-declined.json").read_text())
    assert declined["steps"][-1]["execute"]["payload"]["simulate"] == "decline"
    flat = json.loads((EXAMPLES_DIR / "transient-failures.json").read_text())
    assert all("execute_url" in step for step in flat["steps"])


def test_results_print_as_one_line_per_saga() -> None:
    line = format_result(
        {
            "saga_id": "trip-1002",
            "status": "compensated",
            "failed_step": "charge_payment",
            "reason": "card declined",
            "steps": [
                {"name": "book_flight", "status": "compensated"},
                {"name": "charge_payment", "status": "failed"},
            ],
        }
    )
    assert line == (
        "saga trip-1002: compensated (failed step charge_payment: card declined) "
        "[book_flight=compensated, charge_payment=failed]"
    )


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.e2e
def test_the_whole_stack_starts_provisioned_and_stops_leaving_no_process(tmp_path: Path) -> None:
    assert missing_components() == []
    with LocalStack.start(settings=SETTINGS, log_dir=tmp_path) as stack:
        pids = [process.pid for process in stack.processes]
        # emulators, four functions (saga_sweeper included), three participants
        assert len(pids) == 8 and all(process.alive() for process in stack.processes)
        assert stack.provisioned is not None
        workflow = stack.factory.workflows().get_workflow(name=stack.provisioned.workflow)
        assert workflow.user_env_vars["SAGA_STEP_EXECUTOR_URL"] == stack.function_urls.step_executor
        queue = stack.factory.tasks().get_queue(name=stack.provisioned.queue)
        assert queue.retry_config.max_attempts == 20
        stack.publish_request(stack.example_request("trip-succeeds", saga_id="runner-smoke-1"))
        result = stack.wait_for_result("runner-smoke-1", timeout=60)
        assert result["status"] == "succeeded", result
        calls = stack.participant_calls("payment")
        assert [c["status"] for c in calls if c["effect"]] == [200]
        # The timer calls saga_sweeper every SAGA_SWEEP_SECONDS, and it answers.
        assert stack.sweep_timer is not None and stack.sweep_period() == 3.0
        assert json.loads(stack.sweep_timer.sweep_now()) == {"swept": []}
    assert all(_gone(pid) for pid in pids)


def test_the_printed_publish_example_is_python_that_reads_a_sample_and_targets_the_stack(
    tmp_path: Path,
) -> None:
    stack = LocalStack(settings=SETTINGS, ports=StackPorts().resolved(), log_dir=tmp_path, echo=None)
    snippet = publish_snippet(stack)
    first, *body, last = snippet.splitlines()
    assert first.startswith(f"PUBSUB_EMULATOR_HOST={stack.config.pubsub} ") and last == "EOF"
    code = "\n".join(body)
    compile(code, "<snippet>", "exec")
    assert str(EXAMPLES_DIR / "trip-succeeds.json") in code
    assert stack.participant_urls["payment"] in code
    assert stack.participant_urls["payment"] in describe(stack)


def test_up_reports_a_broken_settings_file_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.env"
    broken.write_text("SAGA_PROJECT_ID=p\nnot a setting\n")
    assert up_main(["--env-file", str(broken), "--auto-ports", "--log-dir", str(tmp_path / "logs")]) == 1
    assert f"{broken}:2: expected KEY=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "logs").exists()
