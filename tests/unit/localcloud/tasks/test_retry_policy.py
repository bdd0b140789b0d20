from __future__ import annotations

import pytest

from localcloud.tasks.dispatcher import retry_after_seconds
from localcloud.tasks.retry import TASK_RETENTION_SECONDS, RetryPolicy, backoff, schedule, should_retry


def test_documented_example_doubles_three_times_then_grows_linearly_then_caps() -> None:
    policy = RetryPolicy(min_backoff=10, max_backoff=300, max_doublings=3)
    assert schedule(policy, 8) == [10, 20, 40, 80, 160, 240, 300, 300]


def test_default_policy_starts_at_a_tenth_of_a_second_and_caps_at_an_hour() -> None:
    policy = RetryPolicy()
    assert schedule(policy, 3) == pytest.approx([0.1, 0.2, 0.4])
    assert backoff(policy, 40) == 3600


def test_zero_doublings_grows_linearly_from_the_start() -> None:
    policy = RetryPolicy(min_backoff=5, max_backoff=1000, max_doublings=0)
    assert schedule(policy, 4) == [5, 10, 15, 20]


def test_attempt_limit_alone_stops_when_duration_is_unlimited() -> None:
    policy = RetryPolicy(max_attempts=3, max_retry_duration=0)
    assert should_retry(policy, 2, 0, 0, 1)
    assert not should_retry(policy, 3, 0, 0, 1)


def test_both_limits_must_be_reached_before_retrying_stops() -> None:
    policy = RetryPolicy(max_attempts=2, max_retry_duration=100)
    assert should_retry(policy, 5, first_attempt_at=0, created_at=0, now=99)
    assert should_retry(policy, 1, first_attempt_at=0, created_at=0, now=500)
    assert not should_retry(policy, 2, first_attempt_at=0, created_at=0, now=100)


def test_unlimited_attempts_retry_until_the_task_retention_limit() -> None:
    policy = RetryPolicy(max_attempts=-1, max_retry_duration=0)
    assert should_retry(policy, 10_000, 0, 0, TASK_RETENTION_SECONDS - 1)
    assert not should_retry(policy, 10_000, 0, 0, TASK_RETENTION_SECONDS)
    bounded_duration = RetryPolicy(max_attempts=-1, max_retry_duration=10)
    assert should_retry(bounded_duration, 10_000, 0, 0, 1_000)


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    assert retry_after_seconds("120", now) == 120
    assert retry_after_seconds("Thu, 01 Jan 2026 00:01:30 GMT", now) == 90
    assert retry_after_seconds("Wed, 31 Dec 2025 00:00:00 GMT", now) == 0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds("", now) is None
