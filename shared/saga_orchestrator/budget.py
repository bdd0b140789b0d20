"""The time budget of one action: how long one attempt may take, and how long the workflow waits for the
action's outcome before it calls the outcome unknown.

One attempt (the participant call plus ``ATTEMPT_OVERHEAD_SECONDS`` for the secret, the token and the
callback) must fit in the Cloud Tasks dispatch deadline, or Cloud Tasks would retry an attempt that is
still running. The workflow's wait covers every attempt, the queue's backoff before each retry and
``WAIT_SLACK_SECONDS``, and never outlasts the saga deadline.
"""

from __future__ import annotations

import math

from saga_orchestrator.settings import Settings

# Time one attempt needs beyond the participant call (secret access, token, callback), seconds.
ATTEMPT_OVERHEAD_SECONDS = 20
# Extra margin on each callback wait (queue dispatch latency, clock skew), seconds.
WAIT_SLACK_SECONDS = 60
MIN_TIMEOUT_SECONDS = 1


def max_timeout_seconds(settings: Settings) -> float:
    """The largest ``timeout_seconds`` a step may ask for: one attempt must fit the dispatch deadline."""
    return max(MIN_TIMEOUT_SECONDS, settings.dispatch_deadline_seconds - ATTEMPT_OVERHEAD_SECONDS)


def wait_seconds(max_attempts: int, timeout_seconds: float, settings: Settings, deadline_seconds: int) -> int:
    """Bound on the workflow's wait for one action's callback, in whole seconds.

    max_attempts × (timeout + overhead) + the queue's backoff before each retry + slack, never more than
    the saga deadline.
    """
    attempts = max_attempts * (timeout_seconds + ATTEMPT_OVERHEAD_SECONDS)
    backoff = sum(settings.retry_delay_seconds(k) for k in range(1, max_attempts))
    return int(min(math.ceil(attempts + backoff + WAIT_SLACK_SECONDS), deadline_seconds))
