"""Per-process wiring of the three functions: settings, clients and the library objects built on them.

Each function's ``main.py`` calls ``current(os.environ)``; the first call builds the runtime, later calls
reuse it (one per process, like the clients inside). ``set_runtime_for_testing`` is the documented seam
for contract tests: it installs a runtime built on a ``ClientFactory`` of the test's choosing.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import requests
import requests.adapters

from saga_orchestrator.clients import ClientFactory
from saga_orchestrator.executor import StepExecutor
from saga_orchestrator.secrets import SecretReader
from saga_orchestrator.settings import Settings
from saga_orchestrator.starter import PubsubPublisher, SagaStarter
from saga_orchestrator.workflows.saga_orchestrator import SagaOrchestrator


class FunctionRuntime:
    def __init__(self, env: Mapping[str, str], clients: ClientFactory | None = None) -> None:
        self.settings = Settings.from_env(env)
        self.clients = clients or ClientFactory(env)
        self._lock = threading.Lock()
        self._starter: SagaStarter | None = None
        self._executor: StepExecutor | None = None
        self._publisher: PubsubPublisher | None = None

    def publisher(self) -> PubsubPublisher:
        with self._lock:
            if self._publisher is None:
                self._publisher = PubsubPublisher(self.clients.publisher(), self.settings.result_topic_path)
            return self._publisher

    def starter(self) -> SagaStarter:
        publisher = self.publisher()
        with self._lock:
            if self._starter is None:
                s = self.settings
                orchestrator = SagaOrchestrator(
                    s.project_id, s.location, s.workflow, clients=self.clients, settings=s
                )
                self._starter = SagaStarter(s, starter=orchestrator, publisher=publisher)
            return self._starter

    def executor(self) -> StepExecutor:
        with self._lock:
            if self._executor is None:
                s = self.settings
                secrets = SecretReader(
                    self.clients.secrets(), s.project_id, ttl_seconds=s.secret_cache_seconds
                )
                self._executor = StepExecutor(
                    s, secrets=secrets, tokens=self.clients.tokens(), session=_pooled_session()
                )
            return self._executor


def _pooled_session() -> requests.Session:
    """One connection pool per instance for participant calls and callbacks (the instance's request
    threads share it). A pooled connection the peer has just closed fails like any transient error, and
    Cloud Tasks retries the attempt."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=16, pool_maxsize=32)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


_current: FunctionRuntime | None = None
_lock = threading.Lock()


def current(env: Mapping[str, str]) -> FunctionRuntime:
    """The process's runtime, built from ``env`` on first use (or the one a test installed)."""
    global _current
    with _lock:
        if _current is None:
            _current = FunctionRuntime(env)
        return _current


def set_runtime_for_testing(runtime: FunctionRuntime | None) -> None:
    """Install ``runtime`` for the next calls of ``current`` (None: build from the env again)."""
    global _current
    with _lock:
        _current = runtime
