from __future__ import annotations

from saga_orchestrator.budget import max_timeout_seconds, wait_seconds
from saga_orchestrator.settings import Settings


def test_wait_seconds_add_attempts_backoff_and_slack():
    # 3 × (30 s timeout + 20 s overhead) + (0.5 + 1) s backoff + 60 s slack = 211.5 → 212
    assert wait_seconds(3, 30, Settings.from_env({}), 86400) == 212
    assert wait_seconds(3, 30, Settings.from_env({}), 100) == 100


def test_one_attempt_with_its_overhead_fits_the_dispatch_deadline():
    assert max_timeout_seconds(Settings.from_env({})) == 100
    assert max_timeout_seconds(Settings.from_env({"SAGA_DISPATCH_DEADLINE_SECONDS": "15"})) == 1
