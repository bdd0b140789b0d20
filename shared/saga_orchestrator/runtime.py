"""Per-process wiring of the three functions: settings, clients and the library objects built on them.

Each function's ``main.py`` calls ``current(os.environ)``; the first call builds the runtime, later calls
reuse it (one per process, like the clients inside). ``set_runtime_for_testing`` is the documented seam
for contract tests: it installs a runtime built on a ``ClientFactory`` of the test's choosing.

Cold start: importing this module loads no Google client, gRPC or HTTP library. Each function builds only
the objects it uses, on its first request, and a client whose use depends on the request (the publisher
of start_saga's rejections, step_executor's Secret Manager client) on the first call that needs it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from saga_orchestrator.clients import ClientFactory
from saga_orchestrator.settings import Settings

if TYPE_CHECKING:
    from saga_orchestrator.executor import StepExecutor
    from saga_orchestrator.forward import Forward
    from saga_orchestrator.pubsub import PubsubPublisher
    from saga_orchestrator.starter import SagaStarter


class FunctionRuntime:
    def __init__(self, env: Mapping[str, str], clients: ClientFactory | None = None) -> None:
        self.settings = Settings.from_env(env)
        self.clients = clients or ClientFactory(env)
        self._lock = threading.Lock()
        self._starter: SagaStarter | None = None
        self._executor: StepExecutor | None = None
        self._forward: Forward | None = None
        self._publisher: PubsubPublisher | None = None

    def publisher(self) -> PubsubPublisher:
        from saga_orchestrator.pubsub import PubsubPublisher

        with self._lock:
            if self._publisher is None:
                # One result per call, and the caller waits for its id: no batching delay.
                self._publisher = PubsubPublisher(
                    lambda: self.clients.publisher_api(), self.settings.result_topic_path
                )
            return self._publisher

    def starter(self) -> SagaStarter:
        from saga_orchestrator.executions import WorkflowExecutions
        from saga_orchestrator.starter import SagaStarter
        from saga_orchestrator.starts import StartClaims

        publisher = self.publisher()
        with self._lock:
            if self._starter is None:
                claims = StartClaims(
                    self.clients.objects,
                    self.settings.start_bucket,
                    takeover_seconds=self.settings.start_takeover_seconds,
                )
                executions = WorkflowExecutions(
                    self.clients.executions, self.settings.workflow_path, claims=claims
                )
                self._starter = SagaStarter(self.settings, executions=executions, publisher=publisher)
            return self._starter

    def executor(self) -> StepExecutor:
        from saga_orchestrator.executor import StepExecutor
        from saga_orchestrator.httpclient import HttpClient
        from saga_orchestrator.secrets import SecretReader

        with self._lock:
            if self._executor is None:
                s = self.settings
                secrets = SecretReader(self.clients.secrets, s.project_id, ttl_seconds=s.secret_cache_seconds)
                http = HttpClient.from_env(self.clients.env)
                self._executor = StepExecutor(s, secrets=secrets, tokens=self.clients.tokens(), http=http)
            return self._executor

    def forward(self) -> Forward:
        from saga_orchestrator.forward import Forward

        executor = self.executor()
        with self._lock:
            if self._forward is None:
                self._forward = Forward(executor, running=self._execution_running)
            return self._forward

    def _execution_running(self, execution: str) -> bool:
        """Whether the execution still runs (its state alone: the BASIC view, without its argument)."""
        from google.cloud.workflows.executions_v1 import ExecutionView

        from saga_orchestrator.executions import execution_state
        from saga_orchestrator.sagas import RUNNING_EXECUTION_STATES

        found = self.clients.executions().get_execution(
            request={"name": execution, "view": ExecutionView.BASIC}
        )
        return execution_state(found) in RUNNING_EXECUTION_STATES


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
