"""The Pub/Sub adapter of ``ports.Publisher``: one topic, one message per call, the caller waits for the id."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from saga_orchestrator.events import PubsubMessage

if TYPE_CHECKING:
    from google.cloud.pubsub_v1 import PublisherClient


class PubsubPublisher:
    """``client`` builds the ``PublisherClient`` on the first publish (a function that only rejects
    now and then does not load Pub/Sub before it has to). Thread-safe."""

    def __init__(
        self, client: Callable[[], PublisherClient], topic_path: str, *, timeout_seconds: float = 60
    ) -> None:
        self._build = client
        self._client: PublisherClient | None = None
        self._lock = threading.Lock()
        self._topic = topic_path
        self._timeout = timeout_seconds

    def publish(self, message: PubsubMessage) -> str:
        with self._lock:
            if self._client is None:
                self._client = self._build()
            client = self._client
        future = client.publish(self._topic, message.data, **message.attributes)
        return str(future.result(timeout=self._timeout))
