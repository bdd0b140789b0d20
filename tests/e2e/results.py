"""The e2e tests' view of ``saga-results``: one streaming-pull subscriber for the whole session.

A consumer reads outcomes this way, and every e2e test shares it (the ``results`` fixture of
``conftest.py``): each test starts its own sagas and reads only the events whose subject is one of its saga
ids, so events of other tests on the same subscription do not disturb it. Pub/Sub delivers at least once;
the listener keeps one event per ``ce-id`` per subject, so a redelivery is not a second result, while a
second result with another ``ce-id`` (a real duplicate) stays visible. Notices (a saga stuck or parked,
``dev.sagaorchestrator.saga.v1.stuck`` / ``.parked``) share the topic; they are kept apart from results.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from typing import Any

from saga_orchestrator.events import NOTICE_TYPES

from devstack.stack import LocalStack, ResultEvent


class ResultListener:
    """A streaming-pull subscriber on its own subscription of the result topic (as a consumer would
    read outcomes), keeping one event per ``ce-id`` per subject."""

    def __init__(self, stack: LocalStack) -> None:
        project = stack.settings.project_id
        topic = f"projects/{project}/topics/{stack.settings.require('SAGA_RESULT_TOPIC')}"
        self.subscription = f"projects/{project}/subscriptions/e2e-results-{uuid.uuid4().hex[:8]}"
        subscriber = stack.factory.subscriber()
        subscriber.create_subscription(
            request={"name": self.subscription, "topic": topic, "ack_deadline_seconds": 10}
        )
        self._events: dict[str, list[ResultEvent]] = {}
        self._notices: dict[str, list[ResultEvent]] = {}
        self._arrived = threading.Condition()
        self._future = subscriber.subscribe(self.subscription, self._on_message)

    def _on_message(self, message: Any) -> None:
        attributes = dict(message.attributes)
        try:
            data: Any = json.loads(bytes(message.data))
        except (UnicodeDecodeError, json.JSONDecodeError):
            data = bytes(message.data).decode("utf-8", errors="replace")
        event = ResultEvent(
            id=attributes.get("ce-id", message.message_id),
            type=attributes.get("ce-type", ""),
            subject=attributes.get("ce-subject", ""),
            attributes=attributes,
            data=data,
        )
        kept = self._notices if event.type in NOTICE_TYPES.values() else self._events
        with self._arrived:
            known = kept.setdefault(event.subject, [])
            if all(seen.id != event.id for seen in known):
                known.append(event)
            self._arrived.notify_all()
        message.ack()

    def events(self, saga_id: str) -> list[ResultEvent]:
        with self._arrived:
            return list(self._events.get(saga_id, []))

    def notices(self, saga_id: str) -> list[ResultEvent]:
        with self._arrived:
            return list(self._notices.get(saga_id, []))

    def wait_notice(self, saga_id: str, timeout: float, count: int = 1) -> ResultEvent | None:
        """The ``count``-th notice of ``saga_id`` once it has arrived, or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self._notices.get(saga_id, [])) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._arrived.wait(remaining)
            return self._notices[saga_id][count - 1]

    def subjects(self) -> set[str]:
        with self._arrived:
            return set(self._events)

    def wait(self, saga_id: str, timeout: float) -> ResultEvent | None:
        deadline = time.monotonic() + timeout
        with self._arrived:
            while not self._events.get(saga_id):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._arrived.wait(remaining)
            return self._events[saga_id][0]

    def close(self) -> None:
        self._future.cancel()
        with contextlib.suppress(Exception):
            self._future.result(timeout=10)
