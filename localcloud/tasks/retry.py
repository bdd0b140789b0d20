"""The retry arithmetic of Cloud Tasks, as pure functions.

Source: the ``RetryConfig`` reference (https://cloud.google.com/tasks/docs/reference/rest/v2/RetryConfig):
the interval starts at ``min_backoff``, doubles ``max_doublings`` times, then grows linearly by
``2**max_doublings * min_backoff`` per retry, and is capped at ``max_backoff``; retrying stops only when
the task has been attempted ``max_attempts`` times (-1 = unlimited) *and* ``max_retry_duration`` has
passed since the first attempt (0 = no time limit); a task is never kept longer than 31 days.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_ATTEMPTS = 100
DEFAULT_MIN_BACKOFF = 0.1
DEFAULT_MAX_BACKOFF = 3600.0
DEFAULT_MAX_DOUBLINGS = 16
DEFAULT_MAX_RETRY_DURATION = 0.0
TASK_RETENTION_SECONDS = 31 * 24 * 3600.0


@dataclass(frozen=True)
class RetryPolicy:
    """Durations in seconds."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_retry_duration: float = DEFAULT_MAX_RETRY_DURATION
    min_backoff: float = DEFAULT_MIN_BACKOFF
    max_backoff: float = DEFAULT_MAX_BACKOFF
    max_doublings: int = DEFAULT_MAX_DOUBLINGS


def backoff(policy: RetryPolicy, retry: int) -> float:
    """Delay before the ``retry``-th retry (1 = the retry after the first failed attempt)."""
    if retry < 1:
        raise ValueError("retry numbers start at 1")
    doublings = policy.max_doublings
    if retry - 1 <= doublings:
        delay = policy.min_backoff * 2 ** (retry - 1)
    else:
        delay = policy.min_backoff * 2**doublings * (retry - doublings)
    return min(delay, policy.max_backoff)


def schedule(policy: RetryPolicy, retries: int) -> list[float]:
    """The first ``retries`` delays, e.g. for documentation or to bound a wait."""
    return [backoff(policy, k) for k in range(1, retries + 1)]


def should_retry(
    policy: RetryPolicy, attempts: int, first_attempt_at: float, created_at: float, now: float
) -> bool:
    """Whether a task that has failed ``attempts`` times gets another attempt."""
    if now - created_at >= TASK_RETENTION_SECONDS:
        return False
    attempts_exhausted = policy.max_attempts != -1 and attempts >= policy.max_attempts
    duration_exhausted = policy.max_retry_duration == 0 or now - first_attempt_at >= policy.max_retry_duration
    return not (attempts_exhausted and duration_exhausted)
