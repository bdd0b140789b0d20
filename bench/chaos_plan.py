"""The requests of a chaos run, a function of its seed, and the killer that runs beside them: a random
target's process group killed with SIGKILL at random gaps and restarted on the same port."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from devstack.stack import LocalStack

if TYPE_CHECKING:
    from bench.chaos import ChaosConfig

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
