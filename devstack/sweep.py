"""The local stand-in for Cloud Scheduler: calls the saga_sweeper function every ``SAGA_SWEEP_SECONDS``.

On Google Cloud a Cloud Scheduler job calls the sweeper with an OIDC token (deploy.sh); locally the
function is a plain functions-framework server, so a daemon thread POSTs to it. A failed call is logged
to the stack's log directory and the next period tries again, as Cloud Scheduler would.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_PERIOD_SECONDS = 5.0


class SweepTimer:
    def __init__(self, url: str, period_seconds: float, log_path: Path | None = None) -> None:
        self.url = url
        self.period = period_seconds
        self._log_path = log_path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="saga-sweep-timer", daemon=True)
        self.calls = 0

    def start(self) -> SweepTimer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)

    def sweep_now(self) -> bytes:
        """One call of the sweeper; returns its answer (raises ``urllib.error.URLError`` on failure)."""
        request = urllib.request.Request(self.url, data=b"{}", method="POST")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=60) as response:
            self.calls += 1
            return bytes(response.read())

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.sweep_now()
            except (urllib.error.URLError, OSError) as error:
                self._note(f"sweep call failed: {error}")

    def _note(self, line: str) -> None:
        if self._log_path is not None:
            with open(self._log_path, "a", encoding="utf-8") as file:
                file.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")
