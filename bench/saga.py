"""Sagas on the full local cloud: latency one at a time, throughput with many in flight, billable steps.

Requests go to ``saga-requests`` with the real publisher; outcomes come back from ``saga-results`` through
synchronous pulls of up to 1,000 messages on a fresh subscription (under the closed loop's load, one pull
every 50 ms). Latency is publish call to outcome received, in this process. Billable steps come from the Workflows engine's admin page of each saga's execution.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import statistics
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from saga_orchestrator.events import decode_result
from saga_orchestrator.settings import Settings
from saga_orchestrator.validation import validate_request

from bench.common import distribution_ms, group_cpu_seconds
from bench.profile import Sampler
from bench.saga_readings import action_split, actions_of, billable_after_end, phases
from bench.saga_standins import StandInCloud, functions_stand_in, quiet, settled
from devstack.stack import LocalStack
from localcloud.clock import ManualClock, SystemClock
from localcloud.workflows.engine.interpreter import run_execution
from localcloud.workflows.engine.loader import load_workflow
from localcloud.workflows.engine.metering import StepMeter

_FLIGHT = {"from": "AMS", "to": "LIS", "date": "2026-12-18", "passenger": "Ada Lovelace"}
_HOTEL = {"city": "Lisbon", "nights": 3, "guest": "Ada Lovelace"}


def saga_request(
    urls: Mapping[str, str], saga_id: str, steps: int, *, decline: bool = False
) -> dict[str, Any]:
    """A trip saga of ``steps`` steps: flight and hotel bookings alternate, the last step charges the payment
    (declined, so the saga compensates, when ``decline``). Every step has a compensation."""
    built: list[dict[str, Any]] = []
    for index in range(steps):
        if index == steps - 1:
            name = f"charge_payment_{index}"
            payload: dict[str, Any] = {"amount": 420, "currency": "EUR"}
            if decline:
                payload["simulate"] = "decline"
            built.append(
                {
                    "name": name,
                    "execute": {
                        "url": f"{urls['payment']}/payment/charge",
                        "payload": payload,
                        "secret_headers": {"X-Api-Key": "payment-api-key"},
                        "retry": {"max_attempts": 3},
                    },
                    "compensate": {
                        "url": f"{urls['payment']}/payment/refund",
                        "payload": {"charge_id": {"$ref": f"steps.{name}.output.charge_id"}},
                        "secret_headers": {"X-Api-Key": "payment-api-key"},
                    },
                }
            )
        elif index % 2 == 0:
            name = f"book_flight_{index}"
            built.append(
                {
                    "name": name,
                    "execute": {"url": f"{urls['flight']}/flight/book", "payload": dict(_FLIGHT)},
                    "compensate": {
                        "url": f"{urls['flight']}/flight/cancel",
                        "payload": {"booking_id": {"$ref": f"steps.{name}.output.booking_id"}},
                    },
                }
            )
        else:
            name = f"reserve_hotel_{index}"
            built.append(
                {
                    "name": name,
                    "execute": {"url": f"{urls['hotel']}/hotel/reserve", "payload": dict(_HOTEL)},
                    "compensate": {
                        "url": f"{urls['hotel']}/hotel/release",
                        "payload": {"reservation_id": {"$ref": f"steps.{name}.output.reservation_id"}},
                    },
                }
            )
    return {"saga_id": saga_id, "deadline_seconds": 3600, "metadata": {"bench": True}, "steps": built}


@dataclass
class Outcome:
    result: dict[str, Any]
    received: float  # time.monotonic()


class Results:
    """A fresh subscription of the result topic, read by one thread with synchronous pulls (each waits for
    messages and takes up to ``PULL_BATCH``, then one call acknowledges them all): the cheapest way the
    client library offers to receive, so this process takes little of the machine it measures. Keeps the
    first outcome of each saga with the monotonic time it arrived (Pub/Sub may deliver twice)."""

    PULL_BATCH = 1000

    def __init__(self, stack: LocalStack) -> None:
        # Seconds from the start of one pull to the next (see ``paced``); 0: pull again at once.
        self.pull_interval = 0.0
        self._subscriber = stack.factory.subscriber()
        project = stack.settings.project_id
        topic = f"projects/{project}/topics/{stack.settings.require('SAGA_RESULT_TOPIC')}"
        self.subscription = f"projects/{project}/subscriptions/bench-results-{secrets.token_hex(4)}"
        self._subscriber.create_subscription(request={"name": self.subscription, "topic": topic})
        self.outcomes: dict[str, Outcome] = {}
        self.duplicates = 0
        self.changed = threading.Condition()
        self.listeners: list[Any] = []
        self.failure: Exception | None = None  # what ended the reader early
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read, name="bench-results", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        """Pull until closed; an error ends the reader and is raised by the next ``wait_for``."""
        try:
            self._pull_until_closed()
        except Exception as error:
            if not self._closed.is_set():  # at close, the deletion fails the calls under way
                with self.changed:
                    self.failure = error
                    self.changed.notify_all()

    def _pull_until_closed(self) -> None:
        from google.api_core import exceptions

        request = {"subscription": self.subscription, "max_messages": self.PULL_BATCH}
        while not self._closed.is_set():
            started = time.monotonic()
            try:
                response = self._subscriber.pull(request=request, timeout=30)
            except exceptions.DeadlineExceeded:
                continue
            now = time.monotonic()
            received = list(response.received_messages)
            if not received:
                continue
            self._subscriber.acknowledge(
                request={"subscription": self.subscription, "ack_ids": [m.ack_id for m in received]}
            )
            for message in received:
                self._keep(message.message, now)
            pause = self.pull_interval - (time.monotonic() - started)
            if pause > 0:
                self._closed.wait(pause)

    def _keep(self, message: Any, now: float) -> None:
        event = decode_result(bytes(message.data), dict(message.attributes))
        with self.changed:
            if event.subject in self.outcomes:
                self.duplicates += 1
                return
            self.outcomes[event.subject] = Outcome(event.result.to_dict(), now)
            self.changed.notify_all()
        for listener in list(self.listeners):
            listener(event.subject)

    @contextlib.contextmanager
    def paced(self, interval: float) -> Iterator[None]:
        """Pull at most every ``interval`` seconds meanwhile. A pull returns as soon as one outcome is
        there, so under a closed loop's load an unpaced reader makes a pull and an acknowledgement for
        every outcome or two, and the refills that follow one ``Publish`` each: calls whose CPU, on
        both sides, the machine under test pays. Paced, each pull takes what arrived in the interval.
        Only for throughput: an outcome waits up to ``interval`` to be seen, which adds to the
        latencies measured meanwhile."""
        self.pull_interval = interval
        try:
            yield
        finally:
            self.pull_interval = 0.0

    def wait_for(self, saga_id: str, timeout: float) -> Outcome | None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while saga_id not in self.outcomes:
                if self.failure is not None:
                    raise RuntimeError(f"reading the outcomes failed: {self.failure!r}") from self.failure
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.changed.wait(remaining)
            return self.outcomes[saga_id]

    def close(self) -> None:
        """Deleting the subscription ends the pull under way (it fails NOT_FOUND) and with it the thread."""
        self._closed.set()
        self._subscriber.delete_subscription(request={"subscription": self.subscription})
        self._reader.join(timeout=10)


class Publisher:
    """Publishes each request at once with the client's generated ``Publish`` call and returns its message
    id: the library's batching would add up to 10 ms of waiting for other messages to every saga's latency
    (which measures the publisher's settings, not the orchestrator) and start a thread per batch."""

    def __init__(self, stack: LocalStack) -> None:
        self._api = stack.factory.publisher_api()
        project = stack.settings.project_id
        self._topic = f"projects/{project}/topics/{stack.settings.require('SAGA_REQUEST_TOPIC')}"

    def publish(self, request: Mapping[str, Any]) -> str:
        return self.publish_all([request])[0]

    def publish_all(self, requests: Sequence[Mapping[str, Any]]) -> list[str]:
        """One ``Publish`` call for all of ``requests`` (at most 1,000, Pub/Sub's limit per call)."""
        messages = [{"data": json.dumps(request).encode("utf-8")} for request in requests]
        response = self._api.publish(request={"topic": self._topic, "messages": messages}, timeout=30)
        return [str(message_id) for message_id in response.message_ids]


def run_one(
    stack: LocalStack, results: Results, publisher: Publisher, steps: int, *, decline: bool, tag: str
) -> tuple[float, dict[str, Any], dict[str, float]]:
    saga_id = f"bench-{tag}-{secrets.token_hex(4)}"
    request = saga_request(stack.participant_urls, saga_id, steps, decline=decline)
    published_wall = time.time()
    started = time.monotonic()
    publisher.publish(request)
    outcome = results.wait_for(saga_id, timeout=60)
    if outcome is None:
        raise TimeoutError(f"saga {saga_id} had no outcome within 60 s (logs: {stack.log_dir})")
    elapsed = outcome.received - started
    return elapsed, outcome.result, phases(outcome.result, published_wall, published_wall + elapsed)


def latency(stack: LocalStack, results: Results, publisher: Publisher, *, quick: bool) -> dict[str, Any]:
    """One saga at a time: 3 steps (median, p99), and 1 and 10 steps for the cost of one more step."""
    counts = {1: 10 if quick else 30, 3: 30 if quick else 100, 10: 10 if quick else 30}
    for _ in range(3):  # warm the functions, the participants and the engine
        run_one(stack, results, publisher, 3, decline=False, tag="warm")
    out: dict[str, Any] = {}
    three: list[dict[str, Any]] = []
    for steps, count in counts.items():
        samples = []
        parts: dict[str, list[float]] = {}
        for _ in range(count):
            seconds, result, split = run_one(
                stack, results, publisher, steps, decline=False, tag=f"lat{steps}"
            )
            if result.get("status") != "succeeded":
                raise RuntimeError(f"latency saga came out {result.get('status')}: {result}")
            samples.append(seconds)
            if steps == 3:
                three.append(result)
            for key, value in split.items():
                parts.setdefault(key, []).append(value)
        out[f"steps_{steps}"] = distribution_ms(samples)
        out[f"steps_{steps}_phases_median_ms"] = {
            key: round(statistics.median(values) * 1000, 2) for key, values in parts.items()
        }
    out["action_split_median_ms"] = action_split(stack, three)
    per_step = (out["steps_10"]["median"] - out["steps_1"]["median"]) / 9.0
    out["per_extra_step_ms"] = round(per_step, 2)
    return out


def cost_shapes(stack: LocalStack, results: Results, publisher: Publisher) -> dict[str, Any]:
    """One saga per shape (1, 3, 10 steps, happy and compensating) on the full local cloud: its billable
    Workflows steps under both readings (the engine's admin page), its actions and delivery attempts (its
    result), and the size of each Cloud Task its workflow created (the same execution argument and
    answers replayed on the engine in this process, ``replay``, which must count the same steps)."""
    shapes: dict[str, Any] = {}
    deployed = stack.factory.workflows().get_workflow(name=saga_settings(stack).workflow_path)
    for steps in (1, 3, 10):
        for decline in (False, True):
            _, result, _ = run_one(stack, results, publisher, steps, decline=decline, tag="cost")
            expected = "compensated" if decline else "succeeded"
            if result.get("status") != expected:
                raise RuntimeError(f"cost saga came out {result.get('status')}, expected {expected}")
            execution = str(result.get("execution"))
            per_step, per_assignment = billable_after_end(stack, execution)
            argument = json.loads(stack.factory.executions().get_execution(name=execution).argument)
            replayed = asyncio.run(
                replay(deployed.source_contents, dict(deployed.user_env_vars), argument, answers_of(result))
            )
            if replayed["billable"] != {"per_step": per_step, "per_assignment": per_assignment}:
                raise RuntimeError(f"the replay counted {replayed['billable']}, the stack {per_step}")
            shapes[f"{steps}_{'compensating' if decline else 'happy'}"] = {
                "steps": steps,
                "compensating": decline,
                "status": result.get("status"),
                "billable": per_step,
                "billable_per_assignment": per_assignment,
                "actions": sum(1 for _ in actions_of(result)),
                "delivery_attempts": sum(int(action.get("attempts") or 1) for action in actions_of(result)),
                "task_bytes": replayed["task_bytes"],
                "result_bytes": len(json.dumps(result).encode("utf-8")),
                "request_bytes": len(
                    json.dumps(saga_request(stack.participant_urls, "x" * 20, steps, decline=decline))
                ),
            }
    return shapes


@dataclass
class _Flight:
    published: dict[str, float] = field(default_factory=dict)
    declined: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Tally:
    completed_in_window: int
    lost: list[str]
    wrong: int
    latencies: list[float]
    retried: int


# How often the closed loop's reader pulls (``Results.paced``): about 10 outcomes a pull at 150 sagas/s, a
# short wait beside the half second a saga takes with 64 in flight on two cores.
PULL_INTERVAL = 0.05


def _keep_in_flight(
    stack: LocalStack,
    publisher: Publisher,
    state: _Flight,
    lock: threading.Lock,
    slots: threading.Semaphore,
    window_end: float,
) -> int:
    """Publish a saga whenever a slot frees, until ``window_end``; the number published. The slots free
    when this thread looks go out in one ``Publish`` call, as a publisher batches under load (the client
    library's default batching sends up to 100 messages a call)."""
    sequence = 0
    run_id = secrets.token_hex(3)
    while time.monotonic() < window_end:
        if not slots.acquire(timeout=0.5):
            continue
        free = 1
        while free < 100 and slots.acquire(blocking=False):
            free += 1
        requests = []
        for _ in range(free):
            sequence += 1
            saga_id = f"bench-tp-{run_id}-{sequence}"
            decline = sequence % 5 == 0
            requests.append(saga_request(stack.participant_urls, saga_id, 3, decline=decline))
            with lock:
                state.published[saga_id] = time.monotonic()
                if decline:
                    state.declined.add(saga_id)
        publisher.publish_all(requests)
    return sequence


def _wait_for_all(results: Results, saga_ids: Mapping[str, float], deadline: float) -> None:
    with results.changed:
        while not all(s in results.outcomes for s in saga_ids):
            if results.failure is not None:
                raise RuntimeError(f"reading the outcomes failed: {results.failure!r}") from results.failure
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            results.changed.wait(min(remaining, 1.0))


def _tally(results: Results, state: _Flight, window_end: float) -> _Tally:
    outcomes = {s: results.outcomes[s] for s in state.published if s in results.outcomes}
    in_window = [s for s, o in outcomes.items() if o.received <= window_end]
    lost = sorted(set(state.published) - set(outcomes))
    wrong = [
        s
        for s, o in outcomes.items()
        if o.result.get("status") != ("compensated" if s in state.declined else "succeeded")
    ]
    latencies = [outcomes[s].received - state.published[s] for s in outcomes]
    retried = [
        s
        for s, o in outcomes.items()
        if any(
            ((step.get(key) or {}).get("attempts") or 1) > 1
            for step in o.result.get("steps") or []
            for key in ("execute", "compensate")
        )
    ]
    return _Tally(len(in_window), lost, len(wrong), latencies, len(retried))


def _profile_under_load(
    stack: LocalStack,
    publisher: Publisher,
    state: _Flight,
    lock: threading.Lock,
    slots: threading.Semaphore,
    seconds: int,
) -> tuple[dict[str, Sampler], int]:
    """py-spy on the emulators and step_executor while the same load goes on for ``seconds``, after the
    measured window: py-spy's own CPU (about a tenth of a core for these two processes, measured) is
    not charged to the figures. The samplers (joined by the caller) and the sagas published meanwhile."""
    samplers = {
        p.name: Sampler(p.pid, seconds) for p in stack.processes if p.name in ("localcloud", "step_executor")
    }
    published = _keep_in_flight(stack, publisher, state, lock, slots, time.monotonic() + seconds)
    return samplers, published


def throughput(
    stack: LocalStack, results: Results, publisher: Publisher, *, seconds: float, in_flight: int = 64
) -> dict[str, Any]:
    """Closed loop: keep ``in_flight`` 3-step sagas running (1 in 5 declined at step 3) for ``seconds``,
    then as long again as the profile takes (at most 20 s); then stop publishing and wait for every
    outstanding one. Counts completions and CPU inside the measured window; every saga, those published
    while profiling included, must come out once and right."""
    state = _Flight()
    lock = threading.Lock()
    slots = threading.Semaphore(in_flight)

    def on_outcome(saga_id: str) -> None:
        with lock:
            mine = saga_id in state.published
        if mine:
            slots.release()

    results.listeners.append(on_outcome)
    pgids = [p.pgid for p in stack.processes]
    names = {p.pgid: p.name for p in stack.processes}
    cpu_before = group_cpu_seconds(pgids)
    profile_seconds = int(min(20.0, max(5.0, seconds / 3)))
    started = time.monotonic()
    window_end = started + seconds
    try:
        with results.paced(PULL_INTERVAL):
            published_in_window = _keep_in_flight(stack, publisher, state, lock, slots, window_end)
            cpu_after = group_cpu_seconds(pgids)
            wall = time.monotonic() - started
            samplers, profiled = _profile_under_load(stack, publisher, state, lock, slots, profile_seconds)
            _wait_for_all(results, state.published, time.monotonic() + 120)
    finally:
        results.listeners.remove(on_outcome)
    tally = _tally(results, state, window_end)
    cpu = {names[g]: round(cpu_after[g] - cpu_before.get(g, 0.0), 2) for g in pgids if g in cpu_after}
    completed_in_window = tally.completed_in_window
    return {
        "window_seconds": round(seconds, 1),
        "in_flight": in_flight,
        "published": published_in_window,
        "published_while_profiling": profiled,
        "completed_in_window": completed_in_window,
        "sagas_per_second": round(completed_in_window / seconds, 2),
        "compensating_share": round(len(state.declined) / max(1, len(state.published)), 3),
        "lost": len(tally.lost),
        "lost_examples": tally.lost[:5],
        "wrong_outcome": tally.wrong,
        "duplicates_received": results.duplicates,
        "sagas_with_a_retried_action": tally.retried,
        "latency_ms": distribution_ms(tally.latencies),
        "cpu_seconds_by_process": cpu,
        "cpu_ms_per_saga_by_process": {
            name: round(1000.0 * value / max(1, completed_in_window), 2) for name, value in cpu.items()
        },
        "wall_seconds": round(wall, 2),
        "profile": {name: sampler.join() for name, sampler in samplers.items()},
    }


# -- The saga workflow replayed on the engine in this process -------------------------------------------
# The deployed workflow and an execution argument run on the engine here, with the Google services around
# it played in process (``bench.saga_standins``): Cloud Tasks records each task it is given (its size: Cloud Tasks bills 32 KB
# chunks) and answers the saga's callback as step_executor would; saga_completion answers 200. On a
# manual clock this measures what an hour of waiting costs, which the full local cloud cannot in a run.

_DECLINED = {
    "status": "failed",
    "output": None,
    "attempts": 1,
    "error": {"kind": "business", "status_code": 409, "message": "payment declined"},
}


def saga_settings(stack: LocalStack) -> Settings:
    """The settings start_saga runs with in this stack."""
    return Settings.from_env(stack.function_environment())


def answers_of(result: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """What step_executor reported for each action of a saga result, by (step name, action)."""
    answers: dict[tuple[str, str], dict[str, Any]] = {}
    for step in result.get("steps") or []:
        for key in ("execute", "compensate"):
            action = step.get(key)
            if isinstance(action, dict) and action.get("status") in ("succeeded", "failed"):
                fields = ("status", "output", "error", "attempts")
                answers[(str(step["name"]), key)] = {k: action.get(k) for k in fields}
    return answers


async def replay(
    source: str, env: Mapping[str, str], argument: Any, answers: Mapping[tuple[str, str], dict[str, Any]]
) -> dict[str, Any]:
    """Runs the workflow ``source`` once to its end with ``argument``: the billable steps under both
    readings and the size of each task created."""
    runner, urls = await functions_stand_in(answers)
    try:
        host = StandInCloud(SystemClock(), {**env, **urls}, answers)
        meter = StepMeter()
        await run_execution(load_workflow(source), argument, host, meter=meter)
        return {"billable": meter.readings(), "task_bytes": host.task_bytes}
    finally:
        await runner.cleanup()


async def waiting_hour(
    source: str, env: Mapping[str, str], run: WaitRun, hours: int
) -> dict[str, dict[str, float]]:
    """The billable steps of one hour of the wait ``run`` leads to, averaged over ``hours`` hours on a
    manual clock moved ``run.tick`` seconds at a time."""
    runner, urls = await functions_stand_in(run.answers)
    clock = ManualClock()
    host = StandInCloud(clock, {**env, **urls}, run.answers)
    meter = StepMeter()
    execution = asyncio.ensure_future(run_execution(load_workflow(source), run.argument, host, meter=meter))
    try:
        await settled(host, meter, -1)
        before = meter.readings()
        for _ in range(int(hours * 3600 / run.tick)):
            await clock.advance(run.tick)
            await quiet(host, meter)
        after = meter.readings()
    finally:
        execution.cancel()
        await asyncio.gather(execution, return_exceptions=True)
        await runner.cleanup()
    return {
        reading: {k: round((after[reading][k] - before[reading][k]) / hours, 2) for k in after[reading]}
        for reading in after
    }


@dataclass(frozen=True)
class WaitRun:
    what: str
    argument: dict[str, Any]
    answers: dict[tuple[str, str], dict[str, Any]]
    tick: float  # seconds the clock moves at a time: the wait's shortest wake


def wait_runs(stack: LocalStack) -> dict[str, WaitRun]:
    """The bench's 3-step trip saga, its argument normalized by start_saga's own validation, waiting:
    ``parked_hour``, its second step declined with on_failure "park" (as a stuck compensation, it waits in
    the workflow's await_decision, waking hourly); ``retrying_call_hour``, its second step's call never
    settling (Cloud Tasks retrying a participant that answers 503; the call's wait is stretched to a day,
    past what the default queue settings allow, to measure its long waits over hours)."""
    urls = stack.participant_urls
    settings = saga_settings(stack)
    flight = {"status": "succeeded", "output": {"booking_id": "B-1"}, "error": None, "attempts": 1}
    parked_request = saga_request(urls, "bench-parked", 3)
    parked_request["steps"][1].update(on_failure="park", park_seconds=7 * 86400)
    retrying = validate_request(saga_request(urls, "bench-retrying", 3), settings).to_argument()
    retrying["deadline_seconds"] = 86400
    retrying["steps"][1]["execute_wait_seconds"] = 86400
    second = str(retrying["steps"][1]["name"])
    return {
        "parked_hour": WaitRun(
            "a saga parked on its second step, waiting for an operator (await_decision)",
            validate_request(parked_request, settings).to_argument(),
            {("book_flight_0", "execute"): flight, (second, "execute"): _DECLINED},
            3600.0,
        ),
        "retrying_call_hour": WaitRun(
            "a saga waiting on a call that Cloud Tasks keeps retrying (execute_wait)",
            retrying,
            {("book_flight_0", "execute"): flight},
            30.0,
        ),
    }


def waiting_hours(stack: LocalStack, *, hours: int = 4) -> dict[str, Any]:
    """What an hour of each wait of ``wait_runs`` costs in billable steps, on the deployed workflow."""
    deployed = stack.factory.workflows().get_workflow(name=saga_settings(stack).workflow_path)
    env = dict(deployed.user_env_vars)
    out: dict[str, Any] = {}
    for name, run in wait_runs(stack).items():
        measured = asyncio.run(waiting_hour(deployed.source_contents, env, run, hours))
        out[name] = {"what": run.what, "hours": hours, **measured}
    return out
