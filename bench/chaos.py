"""Chaos (issue #18): sagas run while the functions and the participants are killed with SIGKILL at random
moments and restarted on the same port; the emulators stay up (they stand for Google's durable services).

    python -m bench.chaos [--sagas 1000] [--seed 7] [--json FILE]

The stack is ``devstack``'s, on free ports, with the demo participants keeping their state in SQLite files
(``--state-dir``), as a real participant keeps it in its database, so a killed participant restarts with
what it had committed. Requests are a seeded mix of 3-step trips (flight, hotel, payment): happy ones and
ones whose payment is declined (they compensate), some with slow participant calls (``simulate`` SUCCESS
with ``seconds``, before the effect or after it, with the answer not yet sent) so that kills land
mid-call. They are published ``in_flight`` at a time while a killer thread picks, at random gaps, one of
``start_saga``, ``step_executor``, ``saga_completion``, ``saga_sweeper`` or a participant, kills its whole
process group (``ManagedProcess.kill``) and restarts it (``ManagedProcess.restart``), one at a time,
until every saga has its result or none has come for ``quiet_seconds``.

Then every result is awaited on a subscription of ``saga-results`` made before the first publish, and
checked against the participants' own records (``GET /_control/journal``: every business decision, kept
in the same transaction as the effect; ``GET /_control/state``: the resources):

- ``one_result_per_saga``: every saga has a result, and one only (two ``ce-id`` for one saga is two
  results; a redelivery of one ``ce-id`` is not);
- ``no_effect_twice``: no (service, saga, step, action) changed business state twice;
- ``no_execute_after_compensation``: no execute took effect after its step's compensation was decided
  (a compensation that found nothing to undo included);
- ``compensated_sagas_fully_undone``: a ``compensated`` saga left no resource in place;
- ``succeeded_sagas_fully_done``: a ``succeeded`` saga left its three resources in place.

A saga whose status is not the one its request asks for (a happy one that compensated because a
participant stayed down through every retry, say) is counted (``unexpected_status``), not failed: the
properties above are what must hold whatever the kills did. The report (JSON on stdout; with ``--json
FILE`` also merged into FILE under ``chaos``) names each broken saga with the kills during its life, for
a reproduction with the same ``--seed`` (the request mix repeats; the moments of the kills do not).
Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from saga_orchestrator.events import NOTICE_TYPES

from bench.saga import Publisher
from devstack.processes import FUNCTION_SIGNATURES
from devstack.settings import DeploymentSettings
from devstack.stack import PARTICIPANTS, LocalStack

TRIP = (("book_flight", "flight"), ("reserve_hotel", "hotel"), ("charge_payment", "payment"))
PATHS = {
    "flight": ("/flight/book", "/flight/cancel", "booking_id"),
    "hotel": ("/hotel/reserve", "/hotel/release", "reservation_id"),
    "payment": ("/payment/charge", "/payment/refund", "charge_id"),
}
PAYLOADS: dict[str, dict[str, Any]] = {
    "flight": {"from": "AMS", "to": "LIS", "date": "2026-12-18"},
    "hotel": {"city": "Lisbon", "nights": 3},
    "payment": {"amount": 420, "currency": "EUR"},
}
DONE = {"flight": "booked", "hotel": "reserved", "payment": "charged"}
UNDONE = {"flight": "cancelled", "hotel": "released", "payment": "refunded"}
TARGETS = (*FUNCTION_SIGNATURES, *(f"participant-{service}" for service in PARTICIPANTS))
# A stuck compensation waits this long for an operator here (deployment.env: a week), so a run ends.
STUCK_DECISION_SECONDS = 60
# A kill of start_saga between a claim and its record leaves the saga id held until the takeover; far
# below the default 600 s (functions here are never slow to create an execution), so a run ends in time.
START_TAKEOVER_SECONDS = 15


@dataclass(frozen=True)
class ChaosConfig:
    sagas: int = 1000
    seed: int = 0
    in_flight: int = 60  # sagas published and not yet answered, at most (a slot frees after slot_timeout)
    slot_timeout: float = 30.0
    rate: float | None = None  # sagas published per second, at most (None: as the slots allow)
    kill_gap: tuple[float, float] = (0.2, 2.0)  # seconds between a restart and the next kill
    declined_share: float = 0.3
    slow_share: float = 0.3  # sagas with one slow participant call
    slow_seconds: tuple[float, float] = (0.2, 1.5)
    # After the last publish. Generous: a start_saga killed between its claim of the saga id and the
    # execution's creation leaves a claim that a redelivery takes over only after 10 minutes.
    result_timeout: float = 900.0
    quiet_seconds: float = 30.0  # the kills stop when no result has come for this long
    # At least this long for the sagas still running when the kills stop: a request whose deliveries met a
    # killed start_saga again and again waits out Eventarc's doubling backoff (10 s, 20 s, ... up to 600 s).
    after_kills_timeout: float = 300.0
    settle_seconds: float = 10.0  # after the last result, for late duplicates
    targets: tuple[str, ...] = TARGETS


@dataclass(frozen=True)
class Planned:
    saga_id: str
    declined: bool
    slow: str | None  # "<step>:<action>:<before|after>" of the slow call, if any

    @property
    def expected(self) -> str:
        return "compensated" if self.declined else "succeeded"


def _call(urls: Mapping[str, str], service: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    execute, compensate, _ = PATHS[service]
    call: dict[str, Any] = {
        "url": urls[service] + (execute if action == "execute" else compensate),
        "payload": payload,
        "timeout_seconds": 10,
        "retry": {"max_attempts": 10},
    }
    if service == "payment":
        call["secret_headers"] = {"X-Api-Key": "payment-api-key"}
    return call


def plan(urls: Mapping[str, str], config: ChaosConfig, run: str) -> list[tuple[Planned, dict[str, Any]]]:
    """The requests of a run, a function of ``config.seed`` alone (``run`` only names the sagas)."""
    rng = random.Random(config.seed)
    planned = []
    for index in range(config.sagas):
        saga_id = f"chaos-{run}-{index:04d}"
        declined = rng.random() < config.declined_share
        slow: str | None = None
        payloads = {name: dict(PAYLOADS[service]) for name, service in TRIP}
        undo: dict[str, dict[str, Any]] = {
            name: {PATHS[service][2]: {"$ref": f"steps.{name}.output.{PATHS[service][2]}"}}
            for name, service in TRIP
        }
        if declined:
            payloads["charge_payment"]["simulate"] = "decline"
        if rng.random() < config.slow_share:
            # A declined payment is not slow; its compensations run, so they may be.
            names = [name for name, _ in TRIP[:2]] if declined else [name for name, _ in TRIP]
            name = rng.choice(names)
            action = "compensate" if declined and rng.random() < 0.5 else "execute"
            after = rng.random() < 0.5
            simulate = {"result": "SUCCESS", "seconds": round(rng.uniform(*config.slow_seconds), 2)}
            if after:
                simulate["after_effect"] = True
            (payloads if action == "execute" else undo)[name]["simulate"] = simulate
            slow = f"{name}:{action}:{'after' if after else 'before'}"
        steps = [
            {
                "name": name,
                "execute": _call(urls, service, "execute", payloads[name]),
                "compensate": _call(urls, service, "compensate", undo[name]),
            }
            for name, service in TRIP
        ]
        request = {"saga_id": saga_id, "steps": steps, "metadata": {"chaos": run}}
        planned.append((Planned(saga_id, declined, slow), request))
    return planned


# --- results -------------------------------------------------------------------------------------------


class ResultLog:
    """Every delivery on a fresh subscription of ``saga-results`` (streaming pull), kept by saga: the
    distinct results (by ``ce-id``), how many deliveries, and notices apart."""

    def __init__(self, stack: LocalStack) -> None:
        subscriber = stack.factory.subscriber()
        project = stack.settings.project_id
        topic = f"projects/{project}/topics/{stack.settings.require('SAGA_RESULT_TOPIC')}"
        self.subscription = f"projects/{project}/subscriptions/chaos-results-{random.getrandbits(32):08x}"
        subscriber.create_subscription(
            request={"name": self.subscription, "topic": topic, "ack_deadline_seconds": 60}
        )
        self.results: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)  # saga -> ce-id -> result
        self.arrived: dict[str, float] = {}  # saga -> monotonic time of its first result
        self.notices: Counter[str] = Counter()
        self.deliveries = 0
        self.changed = threading.Condition()
        self._future = subscriber.subscribe(self.subscription, self._on_message)

    def _on_message(self, message: Any) -> None:
        attributes = dict(message.attributes)
        try:
            data = json.loads(bytes(message.data))
        except (UnicodeDecodeError, json.JSONDecodeError):
            data = {"undecodable": bytes(message.data).decode("utf-8", errors="replace")}
        subject = attributes.get("ce-subject", "")
        with self.changed:
            self.deliveries += 1
            if attributes.get("ce-type") in NOTICE_TYPES.values():
                self.notices[attributes.get("ce-type", "")] += 1
            else:
                self.results[subject][attributes.get("ce-id", message.message_id)] = data
                self.arrived.setdefault(subject, time.monotonic())
            self.changed.notify_all()
        message.ack()

    def answered(self, saga_id: str) -> bool:
        return bool(self.results.get(saga_id))

    def wait_all(self, saga_ids: Iterable[str], deadline: float, quiet: float | None = None) -> None:
        """Until every saga has a result, ``deadline`` (monotonic) passes, or (with ``quiet``) no result
        has come for ``quiet`` seconds."""
        wanted = list(saga_ids)
        with self.changed:
            while not all(self.answered(s) for s in wanted) and time.monotonic() < deadline:
                last = max(self.arrived.values(), default=time.monotonic())
                if quiet is not None and time.monotonic() - last > quiet:
                    return
                self.changed.wait(min(1.0, max(deadline - time.monotonic(), 0.01)))

    def close(self) -> None:
        self._future.cancel()
        with contextlib.suppress(Exception):
            self._future.result(timeout=10)


# --- the killer ----------------------------------------------------------------------------------------


@dataclass
class Killer:
    """Kills a random target's process group with SIGKILL at random gaps, restarts it on the same port and
    waits until it is ready again, until ``stop()``; ``log`` has one entry per kill."""

    stack: LocalStack
    targets: Sequence[str]
    gap: tuple[float, float]
    seed: int
    started: float = field(default_factory=time.monotonic)
    echo: Any = None  # a stream told of each kill
    log: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Killer:
        self._thread = threading.Thread(target=self._run, name="chaos-killer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=120)

    def _run(self) -> None:
        rng = random.Random(self.seed)
        while not self._stop.wait(rng.uniform(*self.gap)):
            name = rng.choice(self.targets)
            process = self.stack.process(name)
            entry: dict[str, Any] = {"at": round(time.monotonic() - self.started, 3), "process": name}
            entry["pid"] = process.pid
            process.kill()
            killed = time.monotonic()
            try:
                process.restart()
            except Exception as error:  # reported; the run goes on without it
                self.failures.append(f"{name} did not restart: {error}")
                entry["restarted"] = False
                self.log.append(entry)
                return
            entry["down_seconds"] = round(time.monotonic() - killed, 3)
            self.log.append(entry)
            if self.echo is not None:
                print(
                    f"killed {name} at {entry['at']:.1f}s, back in {entry['down_seconds']:.1f}s",
                    file=self.echo,
                    flush=True,
                )


# --- checks --------------------------------------------------------------------------------------------


def check(
    planned: Sequence[Planned],
    results: Mapping[str, Mapping[str, Mapping[str, Any]]],
    journals: Mapping[str, Sequence[Mapping[str, Any]]],
    resources: Mapping[str, Mapping[str, Mapping[str, Any]]],
) -> dict[str, dict[str, Any]]:
    """Each property (see the module docstring) with ``ok`` and the saga ids that break it. ``results``:
    saga -> ce-id -> result; ``journals`` and ``resources``: by service, as the participants list them."""
    ours = {p.saga_id for p in planned}
    missing = sorted(s for s in ours if not results.get(s))
    duplicated = sorted(s for s in ours if len(results.get(s, {})) > 1)
    twice, late, refused = _journal_checks(ours, journals)
    statuses = {s: _status(results[s]) for s in ours if results.get(s)}
    left_in_place, not_done = _resource_checks(ours, statuses, resources)
    return {
        "one_result_per_saga": {
            "ok": not missing and not duplicated,
            "missing": missing,
            "duplicated": duplicated,
        },
        "no_effect_twice": {"ok": not twice, "sagas": twice},
        "no_execute_after_compensation": {"ok": not late, "sagas": late, "late_executes_refused": refused},
        "compensated_sagas_fully_undone": {"ok": not left_in_place, "sagas": left_in_place},
        "succeeded_sagas_fully_done": {"ok": not not_done, "sagas": not_done},
    }


def _journal_checks(
    ours: set[str], journals: Mapping[str, Sequence[Mapping[str, Any]]]
) -> tuple[list[str], list[str], int]:
    """From the participants' journals: the sagas with an effect applied twice, those with an execute
    applied after its step's compensation, and how many late executes the barrier refused."""
    applied: Counter[tuple[str, str, str, str]] = Counter()
    refused = 0  # executes that came after their compensation, refused by the barrier
    first_compensation: dict[tuple[str, str, str], int] = {}
    executes: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for service, entries in journals.items():
        for entry in entries:
            saga, step, action = str(entry["saga_id"]), str(entry["step"]), str(entry["action"])
            if saga not in ours:
                continue
            pair = (service, saga, step)
            refused += action == "execute" and str(entry.get("outcome", "")).startswith("refused")
            if entry["effect"]:
                applied[(service, saga, step, action)] += 1
                if action == "execute":
                    executes[pair].append(int(entry["seq"]))
            if action == "compensate":
                first_compensation.setdefault(pair, int(entry["seq"]))
    twice = sorted({key[1] for key, count in applied.items() if count > 1})
    late = sorted(
        {
            pair[1]
            for pair, seqs in executes.items()
            if pair in first_compensation and max(seqs) > first_compensation[pair]
        }
    )
    return twice, late, refused


def _resource_checks(
    ours: set[str], statuses: Mapping[str, str], resources: Mapping[str, Mapping[str, Mapping[str, Any]]]
) -> tuple[list[str], list[str]]:
    """From the participants' resources: the compensated sagas that left one in place, and the
    succeeded ones that did not leave all three."""
    by_saga: dict[str, list[tuple[str, str]]] = defaultdict(list)  # saga -> (service, status)
    for service, items in resources.items():
        for item in items.values():
            if item.get("saga_id") in ours:
                by_saga[str(item["saga_id"])].append((service, str(item["status"])))
    left_in_place = sorted(
        s
        for s, status in statuses.items()
        if status == "compensated" and any(state != UNDONE[svc] for svc, state in by_saga[s])
    )
    not_done = sorted(
        s
        for s, status in statuses.items()
        if status == "succeeded"
        and sorted(by_saga[s]) != sorted((service, DONE[service]) for _, service in TRIP)
    )
    return left_in_place, not_done


def _spread(values: list[float]) -> dict[str, float]:
    """Median, 99th percentile and maximum, in seconds."""
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 3),
        "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
        "max": round(ordered[-1], 3),
    }


def _retried(result: Mapping[str, Any]) -> int:
    return sum(
        1
        for step in result.get("steps") or []
        for key in ("execute", "compensate")
        if isinstance(step.get(key), dict) and int(step[key].get("attempts") or 1) > 1
    )


def _status(results: Mapping[str, Mapping[str, Any]]) -> str:
    """The status of a saga's (first) result; ``"<a>+<b>"`` when its results disagree."""
    found = sorted({str(result.get("status")) for result in results.values()})
    return "+".join(found)


# --- a run ---------------------------------------------------------------------------------------------


def run(stack: LocalStack, config: ChaosConfig, *, echo: Any = None) -> dict[str, Any]:
    """Publish, kill, wait, check (see the module docstring); the report."""
    run_id = f"{random.getrandbits(24):06x}"
    planned = plan(stack.participant_urls, config, run_id)
    log = ResultLog(stack)
    flight = _Flight(log, config.in_flight)
    started = time.monotonic()
    killer = Killer(stack, config.targets, config.kill_gap, config.seed + 1, started=started, echo=echo)
    flight.start()
    killer.start()
    try:
        publish_seconds = _publish(stack, config, planned, flight, started, killer, echo)
        # The kills go on while results come: until every saga has its result, the bound passes, or
        # none has come for ``quiet_seconds`` (the rest are stalled, not slowed down by the kills).
        deadline = time.monotonic() + config.result_timeout
        log.wait_all(flight.published, deadline, quiet=config.quiet_seconds)
    finally:
        killer.stop()
    kills_done = time.monotonic() - started
    log.wait_all(flight.published, max(deadline, time.monotonic() + config.after_kills_timeout))
    last = max(log.arrived.values(), default=time.monotonic())
    time.sleep(max(0.0, last + config.settle_seconds - time.monotonic()))
    flight.stop()
    seconds = {
        "publishing": round(publish_seconds, 1),
        "killing": round(kills_done, 1),
        "total": round(time.monotonic() - started, 1),
    }
    log.close()
    return _report(stack, config, planned, flight.published, log, killer, started, seconds)


class _Flight:
    """At most ``in_flight`` sagas without a result: a slot per published saga, given back when its
    result arrives (a thread watches the result log)."""

    def __init__(self, log: ResultLog, in_flight: int) -> None:
        self.log = log
        self.slots = threading.Semaphore(in_flight)
        self.published: dict[str, float] = {}  # saga id → seconds after the start when published
        self.released: set[str] = set()
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.watcher = threading.Thread(target=self._watch, name="chaos-slots", daemon=True)

    def start(self) -> None:
        self.watcher.start()

    def stop(self) -> None:
        self.done.set()
        self.watcher.join(timeout=5)

    def take(self, saga_id: str, at: float, timeout: float) -> None:
        held = self.slots.acquire(timeout=timeout)
        with self.lock:
            self.published[saga_id] = at
            if not held:  # published without a slot: nothing to give back
                self.released.add(saga_id)

    def _free(self, saga_id: str) -> None:
        with self.lock:
            if saga_id in self.published and saga_id not in self.released:
                self.released.add(saga_id)
                self.slots.release()

    def _watch(self) -> None:
        while not self.done.is_set():
            with self.lock:
                pending = [s for s in self.published if s not in self.released]
            with self.log.changed:
                self.log.changed.wait(0.2)
                answered = [s for s in pending if self.log.answered(s)]
            for saga_id in answered:
                self._free(saga_id)


def _publish(
    stack: LocalStack,
    config: ChaosConfig,
    planned: list[tuple[Planned, dict[str, Any]]],
    flight: _Flight,
    started: float,
    killer: Killer,
    echo: Any,
) -> float:
    """Publish every planned request (at ``config.rate`` when set, within the in-flight bound); the
    seconds it took."""
    publisher = Publisher(stack)
    futures = []
    for index, (item, request) in enumerate(planned):
        if config.rate:
            time.sleep(max(0.0, started + index / config.rate - time.monotonic()))
        flight.take(item.saga_id, time.monotonic() - started, config.slot_timeout)
        futures.append(publisher.publish(request))
        if echo is not None and (index + 1) % 100 == 0:
            print(f"published {index + 1}/{len(planned)}, kills {len(killer.log)}", file=echo, flush=True)
    for future in futures:
        future.result(timeout=60)
    return time.monotonic() - started


def _report(
    stack: LocalStack,
    config: ChaosConfig,
    planned: list[tuple[Planned, dict[str, Any]]],
    published: dict[str, float],
    log: ResultLog,
    killer: Killer,
    started: float,
    seconds: dict[str, float],
) -> dict[str, Any]:
    with log.changed:
        results = {s: dict(log.results.get(s, {})) for s in published}
        deliveries, notices = log.deliveries, dict(log.notices)
    journals = {service: stack.participant(service, "journal") for service in PARTICIPANTS}
    resources = {service: stack.participant(service, "state")["resources"] for service in PARTICIPANTS}
    checks = check([p for p, _ in planned], results, journals, resources)
    statuses = Counter(_status(r) if r else "none" for r in results.values())
    unexpected = Counter(
        f"{p.expected}->{_status(results[p.saga_id]) if results[p.saga_id] else 'none'}"
        for p, _ in planned
        if not results[p.saga_id] or _status(results[p.saga_id]) != p.expected
    )
    latency = {s: log.arrived[s] - started - at for s, at in published.items() if s in log.arrived}
    slowest = sorted(latency, key=latency.__getitem__, reverse=True)[:3]
    broken = sorted(
        {s for c in checks.values() for key in ("missing", "duplicated", "sagas") for s in c.get(key, [])}
    )

    def story(saga_id: str) -> dict[str, Any]:
        return _story(saga_id, planned, published, results, killer.log, log.arrived, started)

    return {
        "sagas": len(planned),
        "seed": config.seed,
        "mix": {
            "declined": sum(p.declined for p, _ in planned),
            "slow_calls": sum(p.slow is not None for p, _ in planned),
        },
        "statuses": dict(sorted(statuses.items())),
        "unexpected_status": dict(sorted(unexpected.items())),
        # Actions that needed more than one attempt (a kill cut a call, a participant was down, ...).
        "actions_retried": sum(_retried(next(iter(r.values()))) for r in results.values() if r),
        "result_deliveries": deliveries,
        "latency_seconds": _spread(list(latency.values())),
        "notices": notices,
        "kills": dict(sorted(Counter(entry["process"] for entry in killer.log).items())),
        "kills_total": len(killer.log),
        "restart_seconds_max": max((e.get("down_seconds", 0.0) for e in killer.log), default=0.0),
        "restart_failures": killer.failures,
        "seconds": seconds,
        "checks": checks,
        "ok": all(c["ok"] for c in checks.values()) and not killer.failures,
        "broken": [story(s) for s in broken[:20]],
        "slowest": [story(s) for s in slowest],
        "kill_log": killer.log,
    }


def _story(
    saga_id: str,
    planned: Sequence[tuple[Planned, dict[str, Any]]],
    published: Mapping[str, float],
    results: Mapping[str, Mapping[str, Any]],
    kills: Sequence[Mapping[str, Any]],
    arrived: Mapping[str, float],
    started: float,
) -> dict[str, Any]:
    """What a reproduction needs about one broken saga: its plan, its results, the kills in its life."""
    item = next(p for p, _ in planned if p.saga_id == saga_id)
    begin = published.get(saga_id, 0.0)
    end = arrived[saga_id] - started if saga_id in arrived else float("inf")
    return {
        "saga_id": saga_id,
        "declined": item.declined,
        "slow": item.slow,
        "published_at": round(begin, 3),
        "first_result_at": None if end == float("inf") else round(end, 3),
        "results": [
            {"ce-id": k, "status": v.get("status"), "cause": v.get("cause")}
            for k, v in results[saga_id].items()
        ],
        # The kills from its publication to its first result (without one: the next minute).
        "kills_meanwhile": [k for k in kills if begin - 1 <= k["at"] <= min(end, begin + 60)],
    }


def launch(log_dir: Path, state_dir: Path, *, echo: Any = None) -> LocalStack:
    """The stack of a chaos run: participants with their state in ``state_dir``, a stuck compensation
    deciding after ``STUCK_DECISION_SECONDS``, a crashed start taken over after ``START_TAKEOVER_SECONDS``."""
    settings = DeploymentSettings.load().with_values(
        {
            "SAGA_STUCK_DECISION_SECONDS": str(STUCK_DECISION_SECONDS),
            # A start_saga killed between its claim and its record holds the saga id this long.
            "SAGA_START_TAKEOVER_SECONDS": str(START_TAKEOVER_SECONDS),
        }
    )
    return LocalStack.launch(
        settings=settings, log_dir=log_dir, participant_state_dir=state_dir, ready_timeout=90.0, echo=echo
    )


def write_json(path: Path, report: Mapping[str, Any]) -> None:
    """``report`` under ``chaos`` in the JSON object of ``path``, its other keys kept (created if missing)."""
    existing: dict[str, Any] = {}
    if path.exists():
        existing = json.loads(path.read_text(encoding="utf-8"))
    existing["chaos"] = report
    path.write_text(json.dumps(existing, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sagas", type=int, default=ChaosConfig.sagas)
    parser.add_argument("--seed", type=int, default=ChaosConfig.seed)
    parser.add_argument("--in-flight", type=int, default=ChaosConfig.in_flight)
    parser.add_argument("--rate", type=float, help="sagas published per second, at most")
    parser.add_argument("--json", type=Path, help="also merge the report into this file, under 'chaos'")
    parser.add_argument("--log-dir", type=Path, help="the processes' logs (default: a new temporary folder)")
    args = parser.parse_args(argv)
    config = ChaosConfig(sagas=args.sagas, seed=args.seed, in_flight=args.in_flight, rate=args.rate)
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="chaos-logs-"))
    with tempfile.TemporaryDirectory(prefix="chaos-state-") as state_dir:
        print(f"starting the stack (logs: {log_dir})", file=sys.stderr, flush=True)
        stack = launch(log_dir, Path(state_dir))
        try:
            report = run(stack, config, echo=sys.stderr)
        finally:
            stack.stop()
    print(json.dumps(report, indent=2))
    if args.json is not None:
        write_json(args.json, report)
    for name, outcome in report["checks"].items():
        print(f"{'PASS' if outcome['ok'] else 'FAIL'} {name}", file=sys.stderr)
    print(f"logs: {log_dir}", file=sys.stderr)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
