"""The results of a chaos run as they arrive: every delivery on ``saga-results``, and the in-flight slots
they give back."""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from saga_orchestrator.events import NOTICE_TYPES

from devstack.stack import LocalStack


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


class Flight:
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
