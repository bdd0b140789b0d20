"""The saga console end to end on the real local stack: ``get_saga_status`` speaks in sagas (running with
a step's attempts so far, parked, stuck, compensated), ``list_sagas`` filters by the saga's state, and
the ``saga`` command starts, lists, shows and steers sagas through the same APIs, as a person would run
it (in-process for most cases, once as a separate process)."""

from __future__ import annotations

import datetime
import io
import json
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from saga_orchestrator.console.cli import EXIT_NOT_APPLICABLE, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, main
from saga_orchestrator.errors import SagaNotFoundError
from saga_orchestrator.sagas import SagaView
from saga_orchestrator.workflows.saga_orchestrator import SagaOrchestrator

from devstack.stack import LocalStack
from tests.e2e.results import ResultListener
from tests.e2e.test_e2e_operator_decisions import notice_of, parked_hotel, result_of, stuck_hotel
from tests.e2e.test_e2e_sagas import POLL_EVERY, RESULT_TIMEOUT, SERVICES, WAIT_TIMEOUT, new_saga_id, trip
from tests.support.eventually import eventually

pytestmark = pytest.mark.e2e


def saga(stack: LocalStack, *argv: str, answer: str = "") -> tuple[int, str]:
    """Run the ``saga`` command in-process against the stack: (exit code, what it printed)."""
    out = io.StringIO()
    code = main(list(argv), out=out, env=stack.function_environment(), ask=lambda prompt: answer)
    return code, out.getvalue()


def ended_view(orchestrator: SagaOrchestrator, saga_id: str) -> SagaView:
    """The saga's view once its execution ended (a moment after it published its result)."""

    def ended() -> SagaView | None:
        view = orchestrator.get_saga_status(saga_id)
        return None if view.running else view

    return eventually(ended, what=f"the end of {saga_id}")


def test_a_running_saga_shows_its_retrying_step_with_the_attempts_so_far_then_its_end_state(
    stack: LocalStack, results: ResultListener, orchestrator: SagaOrchestrator
) -> None:
    saga_id = new_saga_id("status")
    retried = {"simulate": {"result": "ERROR", "times": 3}, "execute": {"retry": {"max_attempts": 5}}}
    stack.publish_request(trip(stack, saga_id, {"reserve_hotel": retried}))

    def retrying() -> Any:
        try:
            view = orchestrator.get_saga_status(saga_id)
        except SagaNotFoundError:  # not started yet
            return None
        hotel = view.steps[1] if view.steps else None
        return view if hotel and hotel.status == "running" and (hotel.attempts or 0) >= 2 else None

    view = eventually(retrying, what="reserve_hotel's second attempt", timeout=WAIT_TIMEOUT, every=POLL_EVERY)
    assert (view.state, view.execution_state) == ("running", "ACTIVE")
    assert [(s.name, s.status) for s in view.steps] == [
        ("book_flight", "succeeded"),
        ("reserve_hotel", "running"),
        ("charge_payment", "pending"),
    ]
    code, shown = saga(stack, "show", saga_id)
    assert code == EXIT_OK
    assert "running        reserve_hotel  (execute, " in shown and "attempts so far" in shown
    assert "if it failed now, it would undo, in this order:" in shown
    plan = shown.split("in this order:\n", 1)[1].split("\nattempts", 1)[0].splitlines()
    assert [line.split(":")[0].strip() for line in plan] == ["reserve_hotel", "book_flight"]

    assert result_of(results, saga_id)["status"] == "succeeded"
    ended = ended_view(orchestrator, saga_id)
    assert ended.state == "succeeded"
    hotel = ended.steps[1]
    assert (hotel.status, hotel.attempts) == ("succeeded", 4)

    # saga show prints every attempt with its answer, read back from the step executor's log.
    def shown_with_attempts() -> str | None:
        shown = saga(stack, "show", saga_id)[1]
        return shown if "4/5" in shown else None

    shown = eventually(shown_with_attempts, what="the hotel's 4th attempt in the log", timeout=WAIT_TIMEOUT)
    attempts = shown.split("attempts (from the step executor's log):\n", 1)[1].splitlines()
    hotel_lines = attempts[next(i for i, line in enumerate(attempts) if "reserve_hotel" in line) :][:4]
    assert [re.findall(r" (\d+/5) ", line) for line in hotel_lines] == [["1/5"], ["2/5"], ["3/5"], ["4/5"]]
    assert [("transient" in line, "success" in line) for line in hotel_lines] == [(True, False)] * 3 + [
        (False, True)
    ]


def test_parked_and_stuck_sagas_say_so_and_a_compensated_one_says_compensated(
    stack: LocalStack, results: ResultListener, orchestrator: SagaOrchestrator
) -> None:
    parked, stuck, declined = new_saga_id("parked"), new_saga_id("stuck"), new_saga_id("declined")
    since = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)).isoformat()
    stack.publish_request(parked_hotel(stack, parked))
    stack.publish_request(stuck_hotel(stack, stuck))
    stack.publish_request(trip(stack, declined, {"charge_payment": {"simulate": "FAILURE"}}))

    notice_of(results, parked)
    notice_of(results, stuck)
    assert orchestrator.get_saga_status(parked).state == "parked"
    assert orchestrator.get_saga_status(stuck).state == "stuck"
    assert {v.saga_id for v in orchestrator.list_sagas(status="parked")} >= {parked}
    assert stuck not in {v.saga_id for v in orchestrator.list_sagas(status="parked")}

    assert saga(stack, "compensate", parked, "--reason", "no rooms", "--yes")[0] == EXIT_OK
    assert saga(stack, "skip", stuck, "reserve_hotel", "--reason", "released by phone", "--yes")[0] == EXIT_OK
    assert result_of(results, parked)["status"] == "compensated"
    assert result_of(results, stuck)["status"] == "compensated"
    assert result_of(results, declined)["status"] == "compensated"

    for saga_id in (parked, stuck, declined):
        assert ended_view(orchestrator, saga_id).state == "compensated"
    # Exactly the compensated sagas of this run (the sagas started since it began): the three.
    code, listed = saga(
        stack, "list", "--status", "compensated", "--since", since, "--limit", "500", "--json"
    )
    assert code == EXIT_OK
    rows = json.loads(listed)
    assert sorted(row["saga_id"] for row in rows) == sorted([parked, stuck, declined])
    assert {row["state"] for row in rows} == {"compensated"}
    code, shown = saga(stack, "show", stuck)
    assert "timeline of " + stuck in shown and "audit: skip reserve_hotel by " in shown


def test_the_saga_command_starts_a_saga_from_a_file_and_says_why_it_refuses(
    stack: LocalStack, results: ResultListener, tmp_path: Path
) -> None:
    saga_id = new_saga_id("cli")
    request = tmp_path / "request.json"
    request.write_text(json.dumps(trip(stack, "replaced-by-the-option")))
    code, started = saga(stack, "start", str(request), "--saga-id", saga_id, "--json")
    assert code == EXIT_OK and json.loads(started)["created"] is True
    assert saga(stack, "start", str(request), "--saga-id", saga_id)[1].endswith(
        "was already started: " + json.loads(started)["execution"] + "\n"
    )
    assert result_of(results, saga_id)["status"] == "succeeded"

    assert saga(stack, "show", "no-such-saga")[0] == EXIT_NOT_FOUND
    assert saga(stack, "cancel", saga_id, "--reason", "too late", "--yes")[0] == EXIT_NOT_APPLICABLE
    assert saga(stack, "cancel", saga_id, "--reason", "not sure")[0] == EXIT_USAGE  # not confirmed
    request.write_text(json.dumps({"steps": []}))
    assert saga(stack, "start", str(request))[0] == EXIT_USAGE


def test_the_saga_command_runs_as_its_own_process(stack: LocalStack) -> None:
    env = stack.function_environment()
    done = subprocess.run(
        [sys.executable, "-m", "saga_orchestrator.console", "list", "--limit", "1", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == EXIT_OK, done.stderr
    assert isinstance(json.loads(done.stdout), list)
    helped = subprocess.run(
        [sys.executable, "-m", "saga_orchestrator.console", "show", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert helped.returncode == 0 and "example: saga show trip-1001" in helped.stdout


def test_saga_watch_prints_results_as_they_arrive_and_leaves_cleanly_on_ctrl_c(
    stack: LocalStack, results: ResultListener
) -> None:
    watch = subprocess.Popen(
        [sys.executable, "-m", "saga_orchestrator.console", "watch"],
        env=stack.function_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    printed: queue.Queue[str] = queue.Queue()
    try:
        assert watch.stdout is not None

        def pump() -> None:
            for line in watch.stdout or []:
                printed.put(line)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        assert printed.get(timeout=30).startswith("watching projects/")
        saga_id = new_saga_id("watched")
        stack.publish_request(trip(stack, saga_id))
        while not printed.get(timeout=RESULT_TIMEOUT).startswith(f"saga {saga_id}: ✔ SUCCEEDED"):
            pass
        watch.send_signal(signal.SIGINT)
        assert watch.wait(timeout=30) == EXIT_OK
        reader.join(timeout=10)
    finally:
        watch.kill()
    assert list(printed.queue)[-1] == "stopped\n"
    subscriptions = stack.factory.subscriber().list_subscriptions(
        project=f"projects/{stack.settings.project_id}"
    )
    assert not [s.name for s in subscriptions if "/saga-watch-" in s.name]


def test_saga_certify_passes_the_demo_participants(stack: LocalStack) -> None:
    secret = f"projects/{stack.settings.project_id}/secrets/payment-api-key/versions/latest"
    api_key = stack.factory.secrets().access_secret_version(name=secret).payload.data.decode()
    for service, spec in SERVICES.items():
        origin = stack.participant_urls[service]
        headers = ["--header", f"X-Api-Key: {api_key}"] if service == "payment" else []
        code, report = saga(
            stack,
            "certify",
            *headers,
            "--execute",
            origin + spec.execute_path,
            "--compensate",
            origin + spec.compensate_path,
            "--payload",
            json.dumps(spec.payload),
            "--failing-payload",
            json.dumps({**spec.payload, "simulate": "FAILURE"}),
            "--metadata-host",
            stack.config.metadata,
        )
        assert code == EXIT_OK, report
        assert "FAIL" not in report and "PASS" in report


def attempt_counts(shown: str) -> dict[tuple[str, str], int]:
    """(step, action) -> how many attempt lines ``saga show`` printed for it."""
    counts: dict[tuple[str, str], int] = {}
    key = ("", "")
    for line in shown.split("attempts (from the step executor's log):\n", 1)[-1].splitlines():
        words = line.split()
        if len(words) > 2 and re.fullmatch(r"\d+/\d+", words[2]):
            key = (words[0], words[1])
        elif not (words and re.fullmatch(r"\d+/\d+", words[0])):
            break
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_saga_show_prints_every_attempt_of_each_demo_saga(stack: LocalStack, results: ResultListener) -> None:
    for example in ("trip-succeeds", "payment-declined", "transient-failures"):
        saga_id = new_saga_id(example)
        stack.publish_request(stack.example_request(example, saga_id=saga_id))
        result = result_of(results, saga_id)
        expected = {
            (step["name"], action): step[action]["attempts"]
            for step in result["steps"]
            for action in ("execute", "compensate")
            if isinstance(step.get(action), dict) and step[action].get("attempts")
        }

        def complete(saga_id: str = saga_id, expected: dict[tuple[str, str], int] = expected) -> str | None:
            shown = saga(stack, "show", saga_id)[1]
            return shown if attempt_counts(shown) == expected else None

        shown = eventually(complete, what=f"every attempt of {saga_id} in saga show", timeout=WAIT_TIMEOUT)
        assert f"timeline of {saga_id}" in shown
    assert sum(expected.values()) > len(expected)  # the transient-failures saga retried
