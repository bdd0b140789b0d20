"""The Pub/Sub adapter of ``ports.Publisher``: one topic, one message per call, the caller waits for the id.

A caller that publishes one message and waits for its id gains nothing from the client library's batching,
which starts a thread for every batch it commits: the message goes out with the generated client's
``Publish`` call (``google.pubsub_v1.PublisherClient``), retried as that method retries by default (the
same error codes and backoff, from the client's ``transports/base.py``) but within ``timeout_seconds`` in
all, where the method's own default would keep retrying for 600 s, past a function's timeout.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from saga_orchestrator.events import PubsubMessage

if TYPE_CHECKING:
    from google.pubsub_v1 import PublisherClient


class PubsubPublisher:
    """``client`` builds the generated ``PublisherClient`` on the first publish (a function that only rejects
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
        request = {
            "topic": self._topic,
            "messages": [{"data": message.data, "attributes": message.attributes}],
        }
        response = client.publish(request=request, retry=_publish_retry(self._timeout), timeout=self._timeout)
        return str(response.message_ids[0])


def _publish_retry(deadline: float) -> Any:
    from google.api_core import exceptions, retry

    transient = retry.if_exception_type(
        exceptions.Aborted,
        exceptions.Cancelled,
        exceptions.DeadlineExceeded,
        exceptions.InternalServerError,
        exceptions.ResourceExhausted,
        exceptions.ServiceUnavailable,
        exceptions.Unknown,
    )
    return retry.Retry(predicate=transient, initial=0.1, maximum=60.0, multiplier=4, timeout=deadline)
