"""The local stand-in for Cloud Scheduler: it POSTs to the sweeper every period until stopped."""

from __future__ import annotations

import time
from pathlib import Path

from devstack.sweep import SweepTimer
from tests.support.eventually import eventually
from tests.support.http import RecordingHttpServer


def test_the_timer_posts_every_period_and_stops(http_server: RecordingHttpServer) -> None:
    timer = SweepTimer(http_server.url("/"), 0.05).start()
    eventually(lambda: len(http_server.requests) >= 3 or None, what="three sweeps", timeout=10, every=0.02)
    timer.stop()
    count = len(http_server.requests)
    time.sleep(0.2)
    assert len(http_server.requests) == count
    assert {r.method for r in http_server.requests} == {"POST"}


def test_a_failed_sweep_is_noted_and_the_next_period_tries_again(
    http_server: RecordingHttpServer, tmp_path: Path
) -> None:
    http_server.script_default(500, 200)
    log = tmp_path / "sweep-timer.log"
    timer = SweepTimer(http_server.url("/"), 0.05, log).start()
    eventually(lambda: timer.calls >= 1 or None, what="a sweep after the failed one", timeout=10, every=0.02)
    timer.stop()
    assert "sweep call failed: HTTP Error 500" in log.read_text(encoding="utf-8")
