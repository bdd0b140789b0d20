"""``python -m localcloud demo`` (``make demo``): three real sagas end to end on the local cloud.

It starts the whole stack (emulators, the three functions under ``functions-framework``, the trip-booking
participants), publishes three requests to ``saga-requests`` — one that succeeds, one whose payment is
declined and is compensated in reverse order, one that meets transient failures and succeeds after
retries — receives their outcomes from ``saga-results`` with the real streaming subscriber, prints a
timeline of each, checks each against what was expected, stops everything, and exits 0 only if all three
came out right.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from saga_orchestrator.console.timeline import render
from saga_orchestrator.events import NOTICE_TYPES, decode_result

from devstack.stack import LocalStack, StackPorts

Check = Callable[[Mapping[str, Any], LocalStack], list[str]]


@dataclass(frozen=True)
class Scenario:
    title: str
    example: str
    check: Check


def _step(result: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    for step in result.get("steps") or []:
        if step.get("name") == name:
            return step
    return {}


def _effects(stack: LocalStack, saga_id: str) -> list[str]:
    """``service:action`` of every call that changed business state, in the order the services saw them."""
    calls = [
        call
        for service in ("flight", "hotel", "payment")
        for call in stack.participant_calls(service)
        if call.get("saga_id") == saga_id and call.get("effect")
    ]
    calls.sort(key=lambda call: float(call.get("at") or 0.0))
    return [f"{call['service']}:{call['action']}" for call in calls]


def expect_success(result: Mapping[str, Any], stack: LocalStack) -> list[str]:
    problems = []
    if result.get("status") != "succeeded":
        problems.append(f"status is {result.get('status')}, expected succeeded")
    for step in result.get("steps") or []:
        if step.get("status") != "succeeded":
            problems.append(f"step {step.get('name')} is {step.get('status')}")
    return problems


def expect_declined_and_compensated(result: Mapping[str, Any], stack: LocalStack) -> list[str]:
    problems = []
    if result.get("status") != "compensated":
        problems.append(f"status is {result.get('status')}, expected compensated")
    if result.get("failed_step") != "charge_payment":
        problems.append(f"failed step is {result.get('failed_step')}, expected charge_payment")
    for name in ("book_flight", "reserve_hotel"):
        if _step(result, name).get("status") != "compensated":
            problems.append(f"step {name} is {_step(result, name).get('status')}, expected compensated")
    effects = _effects(stack, str(result.get("saga_id")))
    wanted = ["flight:execute", "hotel:execute", "hotel:compensate", "flight:compensate"]
    if effects != wanted:
        problems.append(f"participants saw {effects}, expected {wanted} (compensation in reverse order)")
    return problems


def expect_retried_then_success(result: Mapping[str, Any], stack: LocalStack) -> list[str]:
    problems = expect_success(result, stack)
    flight = _step(result, "book_flight").get("execute") or {}
    hotel = _step(result, "reserve_hotel").get("execute") or {}
    if flight.get("attempts") != 3:
        problems.append(f"book_flight took {flight.get('attempts')} attempts, expected 3 (two 503s)")
    if hotel.get("attempts") != 2:
        problems.append(f"reserve_hotel took {hotel.get('attempts')} attempts, expected 2 (one 425)")
    return problems


SCENARIOS = (
    Scenario("trip that succeeds", "trip-succeeds", expect_success),
    Scenario("payment declined", "payment-declined", expect_declined_and_compensated),
    Scenario("transient failures", "transient-failures", expect_retried_then_success),
)


class ResultListener:
    """A streaming-pull subscriber on a fresh subscription of ``saga-results``."""

    def __init__(self, stack: LocalStack) -> None:
        self._stack = stack
        self._results: dict[str, dict[str, Any]] = {}
        self._arrived = threading.Condition()
        subscriber = stack.factory.subscriber()
        project = stack.settings.project_id
        topic = f"projects/{project}/topics/{stack.settings.require('SAGA_RESULT_TOPIC')}"
        self.subscription = f"projects/{project}/subscriptions/demo-results-{secrets.token_hex(4)}"
        subscriber.create_subscription(request={"name": self.subscription, "topic": topic})
        self._future = subscriber.subscribe(self.subscription, self._on_message)

    def _on_message(self, message: Any) -> None:
        if message.attributes.get("ce-type") in NOTICE_TYPES.values():  # a saga waiting for a person
            message.ack()
            return
        event = decode_result(bytes(message.data), dict(message.attributes))
        with self._arrived:
            self._results.setdefault(event.subject, event.result.to_dict())
            self._arrived.notify_all()
        message.ack()

    def wait(self, saga_ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._arrived:
            while not all(s in self._results for s in saga_ids):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._arrived.wait(remaining)
            return {s: self._results[s] for s in saga_ids if s in self._results}

    def close(self) -> None:
        self._future.cancel()


def run(timeout: float, out: Any) -> int:
    print("Starting the local cloud: emulators, functions, participants …", file=out, flush=True)
    started = time.monotonic()
    with LocalStack.start(StackPorts()) as stack:
        print(f"  ready in {time.monotonic() - started:.1f} s", file=out)
        for name, address in stack.summary().items():
            print(f"    {name:<16} {address}", file=out)
        listener = ResultListener(stack)
        run_id = secrets.token_hex(3)
        saga_ids = []
        try:
            print("\nPublishing three saga requests to saga-requests …", file=out)
            for scenario in SCENARIOS:
                saga_id = f"demo-{run_id}-{scenario.example}"
                saga_ids.append(saga_id)
                message_id = stack.publish_request(stack.example_request(scenario.example, saga_id=saga_id))
                print(f"  {scenario.title:<20} saga_id={saga_id}  message {message_id}", file=out)
            results = listener.wait(saga_ids, timeout)
        finally:
            listener.close()
        print("", file=out)
        failures = 0
        for scenario, saga_id in zip(SCENARIOS, saga_ids, strict=True):
            result = results.get(saga_id)
            if result is None:
                failures += 1
                print(f"{scenario.title}: ✘ no outcome on saga-results within {timeout:.0f} s\n", file=out)
                continue
            print(render(result, title=scenario.title), file=out)
            problems = scenario.check(result, stack)
            effects = _effects(stack, saga_id)
            print(f"    participants' effects: {', '.join(effects) or 'none'}", file=out)
            if problems:
                failures += 1
                for problem in problems:
                    print(f"    ✘ {problem}", file=out)
            else:
                print("    ✔ as expected", file=out)
            print("", file=out)
        print("Stopping everything …", file=out, flush=True)
    verdict = "all three sagas came out right" if not failures else f"{failures} of 3 sagas came out wrong"
    print(f"{verdict} ({time.monotonic() - started:.1f} s in all)", file=out)
    return 0 if not failures else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcloud demo", description=__doc__)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the outcomes")
    args = parser.parse_args(argv)
    return run(args.timeout, sys.stdout)
