"""start_saga: Eventarc ``messagePublished`` event from ``saga-requests`` → one Workflows execution.

Returns normally (the event is acknowledged) when the saga was started, was already started (same saga
id: its claim in the start bucket records the execution), or was rejected (a ``rejected`` result is
published on ``saga-results``). Raises, so the event is redelivered (deploy with ``--retry``), while
another delivery of the same saga id is starting it (``StartInProgressError``), and when Workflows,
Cloud Storage or Pub/Sub fail.
"""

from __future__ import annotations

import os

import functions_framework
from cloudevents.http import CloudEvent
from saga_orchestrator import runtime


@functions_framework.cloud_event
def start_saga(event: CloudEvent) -> None:
    runtime.current(os.environ).starter().handle_event(event.get("id"), event.get_data())
