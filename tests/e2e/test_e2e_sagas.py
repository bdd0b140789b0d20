"""Sagas end to end on the real local stack: requests published on ``saga-requests``, outcomes read from
``saga-results``, and what each trip-booking participant saw read from its ``/_control/calls`` record.

Every test asserts both sides: the outcome event (status, failed step, reason, per-step statuses and
attempts) and the participants' calls (exactly which calls, in which order, each business effect once).
Failures are injected per request through the participants' ``"simulate"`` payload field, so tests never
interfere through shared switches. Waits are on the result topic or on an observable event, each with a
deadline.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema
import pytest
from google.cloud.workflows import executions_v1
from saga_orchestrator.model import derive_saga_id
from saga_orchestrator.workflows.saga_orchestrator import SagaOrchestrator

from devstack.processes import ManagedProcess, free_ports, participant_spec
from devstack.settings import REPO_ROOT
from devstack.stack import LocalStack, ResultEvent
from tests.e2e.results import ResultListener
from tests.support.eventually import eventually

pytestmark = pytest.mark.e2e

RESULT_TIMEOUT = 60.0
WAIT_TIMEOUT = 30.0  # for anything but a result (see wait_for_result)
POLL_EVERY = 0.05  # the stack shares the machine with the polls
LOAD_SAGAS = 100
LOAD_TIMEOUT = 120.0
RESULT_SCHEMA = json.loads((REPO_ROOT / "schemas" / "saga-result.schema.json").read_text(encoding="utf-8"))
EVENT_TYPE = "dev.sagaorchestrator.saga.v1."
PAYMENT_SECRET = "payment-api-key"

ENDED_WITHOUT_RESULT = (executions_v1.Execution.State.FAILED, executions_v1.Execution.State.CANCELLED)


@dataclass(frozen=True)
class Service:
    execute_path: str
    compensate_path: str
    id_field: str
    id_prefix: str
    done: str
    undone: str
    payload: Mapping[str, Any]


SERVICES: dict[str, Service] = {
    "flight": Service(
        "/flight/book",
        "/flight/cancel",
        "booking_id",
        "FL-",
        "booked",
        "cancelled",
        {"from": "AMS", "to": "LIS", "date": "2026-12-18"},
    ),
    "hotel": Service(
        "/hotel/reserve",
        "/hotel/release",
        "reservation_id",
        "HT-",
        "reserved",
        "released",
        {"city": "Lisbon"},
    ),
    "payment": Service(
        "/payment/charge", "/payment/refund", "charge_id", "CH-", "charged", "refunded", {"amount": 420}
    ),
}
TRIP: tuple[tuple[str, str], ...] = (
    ("book_flight", "flight"),
    ("reserve_hotel", "hotel"),
    ("charge_payment", "payment"),
)


# --- building requests -------------------------------------------------------------------------------


def new_saga_id(tag: str) -> str:
    return f"e2e-{uuid.uuid4().hex[:8]}-{tag}"


def call_to(stack: LocalStack, service: str, action: str, payload: Any, **options: Any) -> dict[str, Any]:
    spec = SERVICES[service]
    path = spec.execute_path if action == "execute" else spec.compensate_path
    call: dict[str, Any] = {"url": stack.participant_urls[service] + path, "payload": payload}
    if service == "payment":
        call["secret_headers"] = {"X-Api-Key": PAYMENT_SECRET}
    call.update({"timeout_seconds": 10, **options})
    return call


def step(
    stack: LocalStack,
    name: str,
    service: str,
    *,
    simulate: Any = None,
    execute: Mapping[str, Any] | None = None,
    compensate_simulate: Any = None,
    compensate: Mapping[str, Any] | None = None,
    compensable: bool = True,
) -> dict[str, Any]:
    """One rich-form step on ``service``; its compensation names what to undo with a ``$ref`` to the
    step's own output. ``simulate`` / ``compensate_simulate`` go into the payloads (failure injection)."""
    spec = SERVICES[service]
    payload = dict(spec.payload)
    if simulate is not None:
        payload["simulate"] = simulate
    undo: dict[str, Any] = {spec.id_field: {"$ref": f"steps.{name}.output.{spec.id_field}"}}
    if compensate_simulate is not None:
        undo["simulate"] = compensate_simulate
    return {
        "name": name,
        "execute": call_to(stack, service, "execute", payload, **(execute or {})),
        "compensate": call_to(stack, service, "compensate", undo, **(compensate or {}))
        if compensable
        else None,
    }


def trip(
    stack: LocalStack,
    saga_id: str,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    steps: Iterable[tuple[str, str]] = TRIP,
    **top: Any,
) -> dict[str, Any]:
    """A trip saga (flight, hotel, payment by default); ``options[step name]`` are ``step`` keywords."""
    chosen = options or {}
    return {
        "saga_id": saga_id,
        "steps": [step(stack, name, service, **chosen.get(name, {})) for name, service in steps],
        **top,
    }


# --- observing ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    result: dict[str, Any]
    event: ResultEvent
    # Every participant call of this saga, in the order they arrived.
    calls: list[dict[str, Any]]

    def step(self, name: str) -> dict[str, Any]:
        for item in self.result["steps"]:
            if item["name"] == name:
                return dict(item)
        raise AssertionError(f"the result has no step {name!r}: {self.result['steps']}")

    def seen(self) -> list[tuple[str, str, str, int | None]]:
        return seen(self.calls)

    def effects(self) -> list[tuple[str, str, str]]:
        return effects(self.calls)


def seen(calls: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str, int | None]]:
    """(service, step, action, HTTP status) of each call."""
    return [(c["service"], c["step"], c["action"], c["status"]) for c in calls]


def effects(calls: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(service, step, action) of each call that changed business state."""
    return [(c["service"], c["step"], c["action"]) for c in calls if c["effect"]]


def control(url: str, path: str) -> Any:
    with urllib.request.urlopen(f"{url}/_control/{path}", timeout=10) as response:
        return json.loads(response.read())


def calls_of(stack: LocalStack, saga_id: str, services: Iterable[str] = SERVICES) -> list[dict[str, Any]]:
    records = [call for service in services for call in stack.participant_calls(service)]
    mine = [call for call in records if call["saga_id"] == saga_id]
    return sorted(mine, key=lambda call: (call["at"], call["seq"]))


def schema_problems(result: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(RESULT_SCHEMA)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(result)]


def wait_for_result(
    stack: LocalStack, results: ResultListener, saga_id: str, timeout: float = RESULT_TIMEOUT
) -> Any:
    """The saga's result from saga-results; fails early, with the Workflows error, if its execution ended
    without publishing one."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        event = results.wait(saga_id, max(0.0, min(2.0, remaining)))
        if event is not None:
            return event.data
        ended = [e for e in executions_labelled(stack, saga_id) if e.state in ENDED_WITHOUT_RESULT]
        if ended or remaining <= 0:
            event = results.wait(saga_id, 1.0)
            if event is not None:
                return event.data
        for listed in ended:
            execution = stack.factory.executions().get_execution(name=listed.name)
            state = executions_v1.Execution.State(execution.state).name
            raise AssertionError(
                f"execution {execution.name} ended {state} without a result on saga-results: "
                f"{execution.error.payload} (logs: {stack.log_dir})"
            )
        if remaining <= 0:
            raise AssertionError(f"no result for saga {saga_id} within {timeout:g}s (logs: {stack.log_dir})")


def outcome_of(
    stack: LocalStack, results: ResultListener, saga_id: str, timeout: float = RESULT_TIMEOUT
) -> Outcome:
    result = wait_for_result(stack, results, saga_id, timeout)
    assert schema_problems(result) == [], "the result breaks schemas/saga-result.schema.json"
    (event,) = results.events(saga_id)
    assert event.type == EVENT_TYPE + result["status"]
    assert event.attributes.get("ce-specversion") == "1.0"
    assert result["saga_id"] == saga_id
    return Outcome(result=result, event=event, calls=calls_of(stack, saga_id))


def run_saga(
    stack: LocalStack, results: ResultListener, request: Mapping[str, Any], timeout: float = RESULT_TIMEOUT
) -> Outcome:
    stack.publish_request(request)
    return outcome_of(stack, results, str(request["saga_id"]), timeout)


def log_entries(stack: LocalStack, process: str, saga_id: str) -> list[dict[str, Any]]:
    """The structured log lines of ``process`` labelled with ``saga_id``."""
    path = stack.log_dir / f"{process}.log"
    entries = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        labels = entry.get("logging.googleapis.com/labels") if isinstance(entry, dict) else None
        if isinstance(labels, dict) and labels.get("saga_id") == saga_id:
            entries.append(entry)
    return entries


def settled(orchestrator: SagaOrchestrator, execution: str, timeout: float = 30.0) -> str:
    """The execution's state once it left ACTIVE (the result is published just before it returns)."""
    return eventually(
        lambda: (
            state if (state := orchestrator.get_saga_status(execution).execution_state) != "ACTIVE" else None
        ),
        what=f"execution {execution} to finish",
        timeout=timeout,
        every=POLL_EVERY,
    )


def executions_labelled(stack: LocalStack, saga_id: str) -> list[executions_v1.Execution]:
    parent = (
        f"projects/{stack.settings.project_id}/locations/{stack.settings.location}"
        f"/workflows/{stack.settings.require('SAGA_WORKFLOW')}"
    )
    pager = stack.factory.executions().list_executions(
        request=executions_v1.ListExecutionsRequest(parent=parent, filter=f'labels.saga_id="{saga_id}"')
    )
    return list(pager)


def executed_then_compensated(names: list[str], done: int) -> list[tuple[str, str, str]]:
    """The effects of a trip whose first ``done`` steps ran and were then undone in reverse."""
    services = dict(TRIP)
    forward = [(services[n], n, "execute") for n in names[:done]]
    backward = [(services[n], n, "compensate") for n in reversed(names[:done])]
    return forward + backward


# --- the happy path ----------------------------------------------------------------------------------


def test_a_trip_whose_steps_all_succeed_books_each_service_once(
    stack: LocalStack, results: ResultListener, orchestrator: SagaOrchestrator
) -> None:
    saga_id = new_saga_id("ok")
    outcome = run_saga(stack, results, trip(stack, saga_id, metadata={"customer": "c-77"}))
    result = outcome.result

    assert (result["status"], result["failed_step"], result["reason"]) == ("succeeded", None, None)
    assert result["metadata"] == {"customer": "c-77"}
    for name, service in TRIP:
        record = outcome.step(name)
        assert (record["status"], record["compensate"]) == ("succeeded", None)
        execute = record["execute"]
        assert (execute["status"], execute["attempts"], execute["error"]) == ("succeeded", 1, None)
        spec = SERVICES[service]
        assert execute["output"]["status"] == spec.done
        assert execute["output"][spec.id_field].startswith(spec.id_prefix)

    assert outcome.seen() == [(service, name, "execute", 200) for name, service in TRIP]
    assert outcome.effects() == [(service, name, "execute") for name, service in TRIP]
    # Every call carried a verified OIDC token and the same idempotency key on every attempt of it.
    assert all(call["caller"] for call in outcome.calls)
    assert [call["idempotency_key"] for call in outcome.calls] == [
        f"{saga_id}:{name}:execute" for name, _ in TRIP
    ]

    assert orchestrator.find_execution(saga_id) == result["execution"]
    assert settled(orchestrator, result["execution"]) == "SUCCEEDED"
    status = orchestrator.get_saga_status(result["execution"])
    assert status.saga_id == saga_id
    assert status.result["status"] == "succeeded"
    assert [s["status"] for s in status.result["steps"]] == ["succeeded"] * 3


# --- business failures and compensation --------------------------------------------------------------


@pytest.mark.parametrize("failing", [0, 1, 2], ids=["first-step", "middle-step", "last-step"])
def test_a_failed_step_compensates_exactly_the_finished_steps_in_reverse(
    stack: LocalStack, results: ResultListener, failing: int
) -> None:
    names = [name for name, _ in TRIP]
    services = dict(TRIP)
    failed = names[failing]
    simulate = "decline" if services[failed] == "payment" else "FAILURE"
    saga_id = new_saga_id(f"fail{failing}")
    outcome = run_saga(stack, results, trip(stack, saga_id, {failed: {"simulate": simulate}}))
    result = outcome.result

    assert (result["status"], result["failed_step"]) == ("compensated", failed)
    assert "409" in result["reason"]
    for index, name in enumerate(names):
        record = outcome.step(name)
        spec = SERVICES[services[name]]
        if index < failing:
            assert record["status"] == "compensated"
            assert (record["execute"]["status"], record["execute"]["attempts"]) == ("succeeded", 1)
            undo = record["compensate"]
            assert (undo["status"], undo["attempts"], undo["error"]) == ("succeeded", 1, None)
            created = record["execute"]["output"][spec.id_field]
            assert undo["output"] == {spec.id_field: created, "status": spec.undone}
        elif index == failing:
            assert (record["status"], record["compensate"]) == ("failed", None)
            execute = record["execute"]
            assert (execute["status"], execute["attempts"], execute["output"]) == ("failed", 1, None)
            assert (execute["error"]["kind"], execute["error"]["status_code"]) == ("business", 409)
        else:
            assert record == {"name": name, "status": "not_run", "execute": None, "compensate": None}

    expected_calls = [(services[n], n, "execute", 200) for n in names[:failing]]
    expected_calls.append((services[failed], failed, "execute", 409))
    expected_calls += [(services[n], n, "compensate", 200) for n in reversed(names[:failing])]
    assert outcome.seen() == expected_calls
    assert outcome.effects() == executed_then_compensated(names, failing)
    for name in names[:failing]:
        spec = SERVICES[services[name]]
        state = stack.participant(services[name], "state")
        created = outcome.step(name)["execute"]["output"][spec.id_field]
        assert state["resources"][created]["status"] == spec.undone


def test_a_compensation_payload_carries_an_id_from_an_earlier_steps_output(
    stack: LocalStack, results: ResultListener
) -> None:
    # The hotel step's undo is a call to the flight service. Only the booking id in its body, resolved by
    # the step executor from book_flight's output, can tell the flight service what to cancel: that
    # service never saw an execute of reserve_hotel, so it has nothing else to go by.
    saga_id = new_saga_id("ref")
    flight = SERVICES["flight"]
    hotel_step = step(stack, "reserve_hotel", "hotel")
    hotel_step["compensate"] = call_to(
        stack, "flight", "compensate", {"booking_id": {"$ref": "steps.book_flight.output.booking_id"}}
    )
    request = {
        "saga_id": saga_id,
        "steps": [
            step(stack, "book_flight", "flight", compensable=False),
            hotel_step,
            step(stack, "charge_payment", "payment", simulate="decline"),
        ],
    }
    outcome = run_saga(stack, results, request)

    booking = outcome.step("book_flight")["execute"]["output"][flight.id_field]
    assert (outcome.result["status"], outcome.result["failed_step"]) == ("compensated", "charge_payment")
    assert outcome.step("reserve_hotel")["status"] == "compensated"
    assert outcome.step("reserve_hotel")["compensate"]["output"] == {
        "booking_id": booking,
        "status": "cancelled",
    }
    assert outcome.step("book_flight")["compensate"] is None
    assert outcome.seen() == [
        ("flight", "book_flight", "execute", 200),
        ("hotel", "reserve_hotel", "execute", 200),
        ("payment", "charge_payment", "execute", 409),
        ("flight", "reserve_hotel", "compensate", 200),
    ]
    assert outcome.effects() == [
        ("flight", "book_flight", "execute"),
        ("hotel", "reserve_hotel", "execute"),
        ("flight", "reserve_hotel", "compensate"),
    ]
    assert stack.participant("flight", "state")["resources"][booking]["status"] == "cancelled"


@pytest.mark.parametrize(
    ("refused", "options", "status", "outcome_text"),
    [
        ("reserve_hotel", {"execute": {"auth": "none"}}, 401, "unauthenticated: no bearer token"),
        ("charge_payment", {"execute": {"secret_headers": {}}}, 403, "forbidden: API key missing or wrong"),
    ],
    ids=["no-oidc-token", "no-api-key"],
)
def test_a_participant_refusing_the_caller_is_a_business_failure_that_compensates(
    stack: LocalStack,
    results: ResultListener,
    refused: str,
    options: Mapping[str, Any],
    status: int,
    outcome_text: str,
) -> None:
    services = dict(TRIP)
    saga_id = new_saga_id(f"deny{status}")
    request = trip(
        stack, saga_id, {refused: options}, steps=[("book_flight", "flight"), (refused, services[refused])]
    )
    outcome = run_saga(stack, results, request)

    assert (outcome.result["status"], outcome.result["failed_step"]) == ("compensated", refused)
    execute = outcome.step(refused)["execute"]
    assert (execute["status"], execute["attempts"]) == ("failed", 1)
    assert (execute["error"]["kind"], execute["error"]["status_code"]) == ("business", status)
    assert outcome.step("book_flight")["status"] == "compensated"
    assert outcome.seen() == [
        ("flight", "book_flight", "execute", 200),
        (services[refused], refused, "execute", status),
        ("flight", "book_flight", "compensate", 200),
    ]
    assert outcome.calls[1]["outcome"] == outcome_text
    assert outcome.effects() == executed_then_compensated(["book_flight"], 1)


# --- transient failures and retries -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("simulate", "execute", "statuses", "outcomes"),
    [
        ({"result": "ONGOING", "times": 2}, {}, [425, 425, 200], ["injected ONGOING"] * 2 + ["booked"]),
        (
            {"result": "ERROR", "status": 429, "times": 2},
            {},
            [429, 429, 200],
            ["injected ERROR"] * 2 + ["booked"],
        ),
        (
            {"result": "ERROR", "status": 503, "times": 2},
            {},
            [503, 503, 200],
            ["injected ERROR"] * 2 + ["booked"],
        ),
        # The first call hangs past timeout_seconds; the executor gives up on it and Cloud Tasks retries.
        (
            {"result": "HANG", "seconds": 5, "times": 1},
            {"timeout_seconds": 1},
            [None, 200],
            ["injected HANG (5s)", "booked"],
        ),
    ],
    ids=["425", "429", "503", "hang-past-timeout"],
)
def test_a_transient_failure_is_retried_until_the_step_succeeds(
    stack: LocalStack,
    results: ResultListener,
    simulate: Any,
    execute: Mapping[str, Any],
    statuses: list[int | None],
    outcomes: list[str],
) -> None:
    saga_id = new_saga_id("retry")
    options = {"book_flight": {"simulate": simulate, "execute": {"retry": {"max_attempts": 4}, **execute}}}
    request = trip(stack, saga_id, options, steps=TRIP[:2])
    outcome = run_saga(stack, results, request)

    assert (outcome.result["status"], outcome.result["failed_step"]) == ("succeeded", None)
    assert outcome.step("book_flight")["execute"]["attempts"] == len(statuses)
    assert outcome.step("reserve_hotel")["execute"]["attempts"] == 1
    flight_calls = [call for call in outcome.calls if call["service"] == "flight"]
    assert [call["action"] for call in flight_calls] == ["execute"] * len(statuses)
    assert {call["idempotency_key"] for call in flight_calls} == {f"{saga_id}:book_flight:execute"}
    assert [call["outcome"] for call in flight_calls] == outcomes
    # A hung call is answered (503) only when its hang ends, long after the executor gave up on it.
    assert [call["status"] for call in flight_calls][1:] == statuses[1:]
    if statuses[0] is not None:
        assert flight_calls[0]["status"] == statuses[0]
    assert outcome.effects() == [("flight", "book_flight", "execute"), ("hotel", "reserve_hotel", "execute")]


def test_a_participant_that_refuses_connections_is_retried_until_it_listens(
    stack: LocalStack, results: ResultListener
) -> None:
    (port,) = free_ports(1)
    late_url = f"http://127.0.0.1:{port}"
    saga_id = new_saga_id("refused")
    hotel = step(stack, "reserve_hotel", "hotel", execute={"retry": {"max_attempts": 8}})
    hotel["execute"]["url"] = late_url + SERVICES["hotel"].execute_path
    hotel["compensate"]["url"] = late_url + SERVICES["hotel"].compensate_path
    stack.publish_request({"saga_id": saga_id, "steps": [step(stack, "book_flight", "flight"), hotel]})

    def refused_attempts() -> int:
        return sum(
            1
            for entry in log_entries(stack, "step_executor", saga_id)
            if entry["logging.googleapis.com/labels"].get("step") == "reserve_hotel"
            and entry.get("outcome") == "transient"
        )

    eventually(
        lambda: refused_attempts() >= 2,
        what="two refused attempts of reserve_hotel",
        timeout=WAIT_TIMEOUT,
        every=POLL_EVERY,
    )
    spec = participant_spec("hotel", port, certs_url=f"http://{stack.config.metadata}/oauth2/v1/certs")
    late = ManagedProcess.start(
        dataclasses.replace(spec, name="participant-hotel-late"), log_dir=stack.log_dir
    )
    try:
        late.wait_ready()
        outcome = outcome_of(stack, results, saga_id)
        late_calls = [call for call in control(late_url, "calls") if call["saga_id"] == saga_id]
    finally:
        late.stop()

    assert (outcome.result["status"], outcome.result["failed_step"]) == ("succeeded", None)
    attempts = outcome.step("reserve_hotel")["execute"]["attempts"]
    assert 3 <= attempts <= 8
    assert attempts == refused_attempts() + 1
    assert seen(late_calls) == [("hotel", "reserve_hotel", "execute", 200)]
    assert effects(late_calls) == [("hotel", "reserve_hotel", "execute")]
    assert outcome.seen() == [("flight", "book_flight", "execute", 200)]


def test_retries_exhausted_on_execute_compensate_the_finished_steps(
    stack: LocalStack, results: ResultListener
) -> None:
    saga_id = new_saga_id("exhaust")
    options: dict[str, dict[str, Any]] = {
        "reserve_hotel": {
            "simulate": {"result": "ERROR", "status": 503},
            "execute": {"retry": {"max_attempts": 3}},
        }
    }
    outcome = run_saga(stack, results, trip(stack, saga_id, options))
    result = outcome.result

    assert (result["status"], result["failed_step"]) == ("compensated", "reserve_hotel")
    assert "3 attempts failed" in result["reason"]
    execute = outcome.step("reserve_hotel")["execute"]
    assert (execute["status"], execute["attempts"]) == ("failed", 3)
    assert (execute["error"]["kind"], execute["error"]["status_code"]) == ("exhausted", 503)
    assert outcome.step("reserve_hotel")["compensate"] is None
    assert outcome.step("book_flight")["status"] == "compensated"
    assert outcome.step("charge_payment")["status"] == "not_run"
    assert outcome.seen() == [
        ("flight", "book_flight", "execute", 200),
        *[("hotel", "reserve_hotel", "execute", 503)] * 3,
        ("flight", "book_flight", "compensate", 200),
    ]
    assert outcome.effects() == executed_then_compensated(["book_flight"], 1)


def test_a_compensation_that_fails_once_is_retried_and_undoes_once(
    stack: LocalStack, results: ResultListener
) -> None:
    saga_id = new_saga_id("undo-once")
    options: dict[str, dict[str, Any]] = {
        "reserve_hotel": {"compensate_simulate": {"result": "ERROR", "times": 1}},
        "charge_payment": {"simulate": "decline"},
    }
    outcome = run_saga(stack, results, trip(stack, saga_id, options))

    assert (outcome.result["status"], outcome.result["failed_step"]) == ("compensated", "charge_payment")
    undo = outcome.step("reserve_hotel")["compensate"]
    assert (outcome.step("reserve_hotel")["status"], undo["status"], undo["attempts"]) == (
        "compensated",
        "succeeded",
        2,
    )
    assert outcome.step("book_flight")["compensate"]["attempts"] == 1
    assert outcome.seen() == [
        ("flight", "book_flight", "execute", 200),
        ("hotel", "reserve_hotel", "execute", 200),
        ("payment", "charge_payment", "execute", 409),
        ("hotel", "reserve_hotel", "compensate", 500),
        ("hotel", "reserve_hotel", "compensate", 200),
        ("flight", "book_flight", "compensate", 200),
    ]
    assert outcome.effects() == executed_then_compensated(["book_flight", "reserve_hotel"], 2)


def test_a_compensation_that_never_succeeds_fails_the_saga_and_names_the_step(
    stack: LocalStack, results: ResultListener
) -> None:
    saga_id = new_saga_id("stuck")
    options: dict[str, dict[str, Any]] = {
        "reserve_hotel": {
            "compensate_simulate": {"result": "ERROR"},
            "compensate": {"retry": {"max_attempts": 3}},
        },
        "charge_payment": {"simulate": "decline"},
    }
    outcome = run_saga(stack, results, trip(stack, saga_id, options))
    result = outcome.result

    assert (result["status"], result["failed_step"]) == ("failed", "reserve_hotel")
    assert "reserve_hotel" in result["reason"]
    hotel = outcome.step("reserve_hotel")
    assert hotel["status"] == "compensation_failed"
    assert (hotel["compensate"]["status"], hotel["compensate"]["attempts"]) == ("failed", 3)
    assert (hotel["compensate"]["error"]["kind"], hotel["compensate"]["error"]["status_code"]) == (
        "exhausted",
        500,
    )
    # Issue 15 changed this: a stuck compensation no longer abandons the others; the flight is still
    # cancelled, and the result names every undo that did not happen.
    assert result["uncompensated_steps"] == ["reserve_hotel"]
    assert result["cause"] == "step_failed"
    assert outcome.step("book_flight")["status"] == "compensated"
    assert outcome.step("book_flight")["compensate"]["status"] == "succeeded"
    assert outcome.seen() == [
        ("flight", "book_flight", "execute", 200),
        ("hotel", "reserve_hotel", "execute", 200),
        ("payment", "charge_payment", "execute", 409),
        *[("hotel", "reserve_hotel", "compensate", 500)] * 3,
        ("flight", "book_flight", "compensate", 200),
    ]
    assert outcome.effects() == [
        ("flight", "book_flight", "execute"),
        ("hotel", "reserve_hotel", "execute"),
        ("flight", "book_flight", "compensate"),
    ]


# --- deadline and cancellation ------------------------------------------------------------------------


def test_a_saga_deadline_that_expires_mid_saga_compensates_and_names_the_deadline(
    stack: LocalStack, results: ResultListener
) -> None:
    saga_id = new_saga_id("deadline")
    options: dict[str, dict[str, Any]] = {
        "reserve_hotel": {
            "simulate": {"result": "ERROR", "status": 503},
            "execute": {"retry": {"max_attempts": 20}, "timeout_seconds": 2},
        }
    }
    started = time.monotonic()
    outcome = run_saga(stack, results, trip(stack, saga_id, options, deadline_seconds=3))
    result = outcome.result

    assert time.monotonic() - started < 30
    assert (result["status"], result["failed_step"]) == ("compensated", "reserve_hotel")
    assert "deadline" in result["reason"]
    execute = outcome.step("reserve_hotel")["execute"]
    assert execute["status"] == "failed"
    assert execute["error"]["kind"] == "deadline"
    assert outcome.step("book_flight")["status"] == "compensated"
    assert outcome.step("charge_payment")["status"] == "not_run"
    hotel_calls = [call for call in outcome.calls if call["service"] == "hotel"]
    # Only the attempts made before the deadline reached the hotel; the step reports exactly those.
    assert 1 <= len(hotel_calls) < 20
    assert execute["attempts"] == len(hotel_calls), (
        f"reserve_hotel reports {execute['attempts']} attempts but the hotel saw {len(hotel_calls)} calls "
        f"(dispatch failures in {stack.log_dir / 'localcloud.log'}?)"
    )
    assert outcome.seen() == [
        ("flight", "book_flight", "execute", 200),
        *[("hotel", "reserve_hotel", "execute", 503)] * len(hotel_calls),
        ("flight", "book_flight", "compensate", 200),
    ]
    assert outcome.effects() == executed_then_compensated(["book_flight"], 1)


def test_a_saga_deadline_that_expires_while_a_step_hangs_compensates_the_unknown_step(
    stack: LocalStack,
    results: ResultListener,
) -> None:
    # The hotel never answers within the deadline, so the saga cannot know whether it reserved: the step
    # is "unknown", is compensated anyway (DESIGN §2, step 2), and the hotel treats that undo as a no-op.
    # The workflow notices at its next wake-up (its callback waits are 30 s slices).
    saga_id = new_saga_id("deadline-hang")
    options: dict[str, dict[str, Any]] = {
        "reserve_hotel": {
            "simulate": {"result": "HANG", "seconds": 60},
            "execute": {"timeout_seconds": 60},
        }
    }
    started = time.monotonic()
    outcome = run_saga(stack, results, trip(stack, saga_id, options, deadline_seconds=3), timeout=60)
    result = outcome.result

    assert time.monotonic() - started < 60
    assert (result["status"], result["failed_step"]) == ("compensated", "reserve_hotel"), result["reason"]
    assert "deadline" in result["reason"]
    hotel = outcome.step("reserve_hotel")
    assert hotel["status"] == "compensated"
    assert (hotel["execute"]["status"], hotel["execute"]["error"]["kind"]) == ("unknown", "timeout")
    assert hotel["compensate"]["status"] == "succeeded"
    assert outcome.step("book_flight")["status"] == "compensated"
    assert outcome.step("charge_payment")["status"] == "not_run"
    assert [(s, n, a) for s, n, a, _ in outcome.seen()] == [
        ("flight", "book_flight", "execute"),
        ("hotel", "reserve_hotel", "execute"),
        ("hotel", "reserve_hotel", "compensate"),
        ("flight", "book_flight", "compensate"),
    ]
    assert outcome.calls[2]["outcome"] == "null compensation"
    assert outcome.effects() == executed_then_compensated(["book_flight"], 1)


def test_terminating_a_running_saga_stops_it_where_it_is(
    stack: LocalStack, results: ResultListener, orchestrator: SagaOrchestrator
) -> None:
    saga_id = new_saga_id("cancel")
    options: dict[str, dict[str, Any]] = {
        "reserve_hotel": {
            "simulate": {"result": "HANG", "seconds": 4, "times": 1},
            "execute": {"retry": {"max_attempts": 1}},
        }
    }
    stack.publish_request(trip(stack, saga_id, options))
    execution = eventually(
        lambda: orchestrator.find_execution(saga_id),
        what="the saga's execution",
        timeout=WAIT_TIMEOUT,
        every=POLL_EVERY,
    )
    eventually(
        lambda: [c for c in calls_of(stack, saga_id, ["hotel"]) if c["status"] is None],
        what="reserve_hotel to be in flight",
        timeout=WAIT_TIMEOUT,
        every=POLL_EVERY,
    )

    assert orchestrator.terminate_saga(execution, reason="e2e: stop it where it is") == "CANCELLED"
    assert orchestrator.get_saga_status(execution).execution_state == "CANCELLED"

    # The hung call ends (made by the forward run, which then finds its execution ended and calls nobody
    # else); no Cloud Task of the execution is left to call anybody again.
    eventually(
        lambda: [c for c in calls_of(stack, saga_id, ["hotel"]) if c["status"] is not None],
        what="reserve_hotel's hung call to end",
        timeout=WAIT_TIMEOUT,
        every=POLL_EVERY,
    )
    # Nothing was compensated; the only result is the sweeper's: failed, cause terminated.
    swept = results.wait(saga_id, RESULT_TIMEOUT)
    assert swept is not None and [e.id for e in results.events(saga_id)] == [swept.id]
    assert (swept.data["status"], swept.data["cause"]) == ("failed", "terminated")
    queue = (
        f"projects/{stack.settings.project_id}/locations/{stack.settings.location}"
        f"/queues/{stack.settings.require('SAGA_TASK_QUEUE')}"
    )
    execution_id = execution.rsplit("/", 1)[1]
    assert not [t for t in stack.factory.tasks().list_tasks(parent=queue) if execution_id in t.name]
    calls = calls_of(stack, saga_id)
    assert {(c["service"], c["step"], c["action"]) for c in calls} == {
        ("flight", "book_flight", "execute"),
        ("hotel", "reserve_hotel", "execute"),
    }
    assert orchestrator.get_saga_status(execution).execution_state == "CANCELLED"
    assert [e.name for e in executions_labelled(stack, saga_id)] == [execution]


# --- secrets ------------------------------------------------------------------------------------------

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.")


def test_a_secret_reaches_the_participant_as_a_header_and_nowhere_else(
    stack: LocalStack, results: ResultListener
) -> None:
    secret_name = f"projects/{stack.settings.project_id}/secrets/{PAYMENT_SECRET}/versions/latest"
    secret = stack.factory.secrets().access_secret_version(name=secret_name).payload.data.decode("utf-8")
    assert len(secret) >= 16
    saga_id = new_saga_id("secret")
    outcome = run_saga(stack, results, trip(stack, saga_id, steps=[("charge_payment", "payment")]))

    # The payment service answers 403 unless X-Api-Key holds the secret's value.
    assert outcome.result["status"] == "succeeded"
    assert outcome.seen() == [("payment", "charge_payment", "execute", 200)]
    assert outcome.calls[0]["outcome"] == "charged"

    execution = stack.factory.executions().get_execution(
        request=executions_v1.GetExecutionRequest(
            name=outcome.result["execution"], view=executions_v1.ExecutionView.FULL
        )
    )
    assert PAYMENT_SECRET in execution.argument  # the reference travels, the value never does
    assert secret not in execution.argument
    assert secret not in execution.result
    assert secret not in json.dumps(outcome.result)
    assert secret not in json.dumps(dict(outcome.event.attributes))
    for log in sorted(stack.log_dir.glob("*.log")):
        for number, line in enumerate(log.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            assert secret not in line, f"{log.name}:{number} carries the secret's value"
            assert not JWT.search(line), f"{log.name}:{number} carries a token"


# --- requests refused at the door ---------------------------------------------------------------------


def _no_steps(stack: LocalStack, saga_id: str) -> dict[str, Any]:
    return {"saga_id": saga_id, "steps": []}


def _with_flight_url(url: str) -> Callable[[LocalStack, str], dict[str, Any]]:
    def build(stack: LocalStack, saga_id: str) -> dict[str, Any]:
        request = trip(stack, saga_id, steps=TRIP[:1])
        request["steps"][0]["execute"]["url"] = url
        return request

    return build


def _too_large(stack: LocalStack, saga_id: str) -> dict[str, Any]:
    request = trip(stack, saga_id, steps=TRIP[:1])
    request["steps"][0]["execute"]["payload"]["note"] = "y" * 33_000
    return request


@pytest.mark.parametrize(
    ("build", "field", "message"),
    [
        (None, "", "not JSON"),
        (_no_steps, "steps", "non-empty list"),
        (
            _with_flight_url("ftp://127.0.0.1/flight/book"),
            "steps[0].execute.url",
            "scheme must be http or https",
        ),
        (_with_flight_url("http://example.com/flight/book"), "steps[0].execute.url", "not on the allowlist"),
        (_too_large, "", "Workflows argument limit"),
    ],
    ids=["not-json", "no-steps", "bad-url", "host-not-allowed", "too-large"],
)
def test_an_invalid_request_is_answered_with_a_rejected_result_naming_the_problem(
    stack: LocalStack,
    results: ResultListener,
    orchestrator: SagaOrchestrator,
    build: Callable[[LocalStack, str], dict[str, Any]] | None,
    field: str,
    message: str,
) -> None:
    if build is None:
        message_id = stack.publish_request(b'{"saga_id": "e2e-broken", "steps": [')
        saga_id = derive_saga_id(message_id)
    else:
        saga_id = new_saga_id("reject")
        message_id = stack.publish_request(build(stack, saga_id))
    outcome = outcome_of(stack, results, saga_id)
    result = outcome.result

    assert (result["status"], result["execution"], result["steps"]) == ("rejected", None, [])
    assert result["event_id"] == message_id
    assert any(error["field"] == field and message in error["message"] for error in result["errors"]), result[
        "errors"
    ]
    assert orchestrator.find_execution(saga_id) is None
    assert outcome.calls == []


def test_the_same_request_published_twice_starts_one_saga(stack: LocalStack, results: ResultListener) -> None:
    saga_id = new_saga_id("twice")
    request = trip(stack, saga_id)
    first = stack.publish_request(request)
    second = stack.publish_request(request)
    assert first != second
    outcome = outcome_of(stack, results, saga_id)

    handled = eventually(
        lambda: (
            entries
            if len(
                entries := [
                    e["message"]
                    for e in log_entries(stack, "start_saga", saga_id)
                    if e["message"].startswith(("saga started", "duplicate request"))
                ]
            )
            >= 2
            else None
        ),
        what="start_saga to handle both messages",
        timeout=WAIT_TIMEOUT,
        every=POLL_EVERY,
    )
    assert sorted(handled) == ["duplicate request: the saga was already started", "saga started"]
    # When both deliveries arrive at once, both may create an execution; the one that yields cancels its
    # own at once, so one execution runs the saga.
    states = {e.name: e.state.name for e in executions_labelled(stack, saga_id)}
    assert {name for name, state in states.items() if state != "CANCELLED"} == {outcome.result["execution"]}
    assert len(states) <= 2
    assert len(results.events(saga_id)) == 1
    assert outcome.result["status"] == "succeeded"
    assert outcome.effects() == [(service, name, "execute") for name, service in TRIP]


# --- load ---------------------------------------------------------------------------------------------


def test_a_hundred_sagas_published_at_once_all_reach_the_right_outcome(
    stack: LocalStack, results: ResultListener
) -> None:
    batch = uuid.uuid4().hex[:6]
    declined = {f"e2e-{batch}-load-{n:03d}" for n in range(LOAD_SAGAS) if n % 4 == 3}
    saga_ids = [f"e2e-{batch}-load-{n:03d}" for n in range(LOAD_SAGAS)]
    steps = [("book_flight", "flight"), ("charge_payment", "payment")]
    topic = f"projects/{stack.settings.project_id}/topics/{stack.settings.require('SAGA_REQUEST_TOPIC')}"
    publisher = stack.factory.publisher()
    started = time.monotonic()
    futures = []
    for saga_id in saga_ids:
        options = {"charge_payment": {"simulate": "decline"}} if saga_id in declined else {}
        data = json.dumps(trip(stack, saga_id, options, steps=steps)).encode("utf-8")
        futures.append(publisher.publish(topic, data))
    for future in futures:
        future.result(timeout=30)

    outcomes = {}
    for saga_id in saga_ids:
        remaining = LOAD_TIMEOUT - (time.monotonic() - started)
        outcomes[saga_id] = wait_for_result(stack, results, saga_id, timeout=max(remaining, 0.1))
    elapsed = time.monotonic() - started
    assert elapsed < LOAD_TIMEOUT

    calls: dict[str, list[dict[str, Any]]] = {saga_id: [] for saga_id in saga_ids}
    for service in ("flight", "payment", "hotel"):
        for call in stack.participant_calls(service):
            if call["saga_id"] in calls:
                calls[call["saga_id"]].append(call)
    wrong = []
    for saga_id in saga_ids:
        result = outcomes[saga_id]
        mine = sorted(calls[saga_id], key=lambda call: (call["at"], call["seq"]))
        if saga_id in declined:
            expected: tuple[str, str | None, list[str]] = (
                "compensated",
                "charge_payment",
                ["compensated", "failed"],
            )
            expected_effects = executed_then_compensated(["book_flight"], 1)
        else:
            expected = ("succeeded", None, ["succeeded", "succeeded"])
            expected_effects = [(service, name, "execute") for name, service in steps]
        got = (result["status"], result["failed_step"], [s["status"] for s in result["steps"]])
        if got != expected or effects(mine) != expected_effects or schema_problems(result):
            wrong.append((saga_id, got, effects(mine)))
    assert wrong == []
    assert all(len(results.events(saga_id)) == 1 for saga_id in saga_ids)
