"""An engine (``localcloud.workflows.service.server.start``) on its own event loop in a background thread, so the
tests drive it with the real, synchronous Google clients and plain HTTP, as a user's process would."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import threading
import uuid
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import grpc
import pytest
import requests
from google.cloud.workflows import executions_v1
from google.cloud.workflows.executions_v1.services.executions.transports import ExecutionsGrpcTransport
from google.cloud.workflows_v1 import WorkflowsClient
from google.cloud.workflows_v1.services.workflows.transports import WorkflowsGrpcTransport
from google.cloud.workflows_v1.types import workflows as wf

from localcloud.auth import TokenAuthority
from localcloud.clock import Clock, ManualClock, SystemClock
from localcloud.config import LocalCloudConfig
from localcloud.runtime import Context, RunningService
from tests.support.eventually import eventually

T = TypeVar("T")
PROJECT = "local-project"
LOCATION = "us-central1"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"

HAS_INTERPRETER = importlib.util.find_spec("localcloud.workflows.engine.interpreter") is not None
needs_interpreter = pytest.mark.skipif(
    not HAS_INTERPRETER,
    reason="the Workflows interpreter (localcloud.workflows.engine.interpreter) is not there yet",
)


def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


@dataclasses.dataclass
class Engine:
    loop: asyncio.AbstractEventLoop
    ctx: Context
    service: Any
    others: dict[str, RunningService]
    workflows: WorkflowsClient
    executions: executions_v1.ExecutionsClient

    @property
    def clock(self) -> Clock:
        return self.ctx.clock

    @property
    def http(self) -> str:
        return str(self.service.http_url)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def advance(self, seconds: float) -> None:
        clock = self.ctx.clock
        assert isinstance(clock, ManualClock)
        self.run(clock.advance(seconds))

    def token(self, scopes: tuple[str, ...] = ("https://www.googleapis.com/auth/cloud-platform",)) -> str:
        return self.ctx.authority.mint_access_token(
            "caller@local-project.iam.gserviceaccount.com", scopes
        ).token

    def deploy(
        self, source: str, *, env: dict[str, str] | None = None, labels: dict[str, str] | None = None
    ) -> wf.Workflow:
        workflow_id = "wf-" + uuid.uuid4().hex[:10]
        workflow = wf.Workflow(source_contents=source, user_env_vars=env or {}, labels=labels or {})
        operation = self.workflows.create_workflow(parent=PARENT, workflow=workflow, workflow_id=workflow_id)
        return operation.result(timeout=10)

    def execute(
        self, workflow: wf.Workflow, argument: Any = None, *, labels: dict[str, str] | None = None
    ) -> executions_v1.Execution:
        import json

        execution = executions_v1.Execution(
            argument="" if argument is None else json.dumps(argument), labels=labels or {}
        )
        return self.executions.create_execution(parent=workflow.name, execution=execution)

    def wait_until(
        self,
        name: str,
        *,
        states: tuple[str, ...] = ("SUCCEEDED", "FAILED", "CANCELLED"),
        timeout: float = 15,
    ) -> executions_v1.Execution:
        def ended() -> executions_v1.Execution:
            execution = self.executions.get_execution(name=name)
            assert execution.state.name in states, f"{name} still {execution.state.name}"
            return execution

        return eventually(ended, timeout=timeout, what=f"{name} to reach {'/'.join(states)}")

    def callbacks_of(self, execution_name: str, token: str | None = None) -> requests.Response:
        return requests.get(
            f"{self.http}/v1/{execution_name}/callbacks",
            headers={"Authorization": f"Bearer {token or self.token()}"},
            timeout=10,
        )

    def wait_for_callback(
        self, execution_name: str, *, waiters: int | None = None, timeout: float = 10
    ) -> dict[str, Any]:
        """The execution's first callback once it exists (and, if asked, has that many waiters)."""

        def first_callback() -> dict[str, Any]:
            response = self.callbacks_of(execution_name)
            assert response.status_code == 200, f"{response.status_code} {response.text}"
            callbacks = response.json()["callbacks"]
            assert callbacks and (waiters is None or int(callbacks[0]["waiters"]) == waiters), callbacks
            return dict(callbacks[0])

        return eventually(first_callback, timeout=timeout, what=f"a callback on {execution_name}")

    def callback_url(self, callback: dict[str, Any]) -> str:
        return f"{self.http}/v1/{callback['name']}"

    parent = PARENT

    @staticmethod
    def has_module(name: str) -> bool:
        return has_module(name)


def _start_engine(clock: Clock) -> Iterator[Engine]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="workflows-engine", daemon=True)
    thread.start()

    def run(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(30)

    env = {
        "WORKFLOWS_EMULATOR_HOST": "127.0.0.1:0",
        "WORKFLOWS_HTTP_HOST": "127.0.0.1:0",
        "CLOUD_TASKS_EMULATOR_HOST": "127.0.0.1:0",
        "SECRET_MANAGER_EMULATOR_HOST": "127.0.0.1:0",
        "PUBSUB_EMULATOR_HOST": "127.0.0.1:0",
    }
    ctx = Context(
        config=LocalCloudConfig.from_env(env), clock=clock, authority=TokenAuthority(clock, key_size=1024)
    )
    others: dict[str, RunningService] = {}
    for module, key in (
        ("localcloud.secretmanager.server", "secretmanager"),
        ("localcloud.tasks.server", "tasks"),
        ("localcloud.pubsub.server", "pubsub"),
    ):
        if has_module(module):
            started = run(importlib.import_module(module).start(ctx))
            others[key] = started
            ctx.config = dataclasses.replace(ctx.config, **{key: started.address})
    from localcloud.workflows.service.server import start

    service = run(start(ctx, internal_url_prefixes=()))
    workflows = WorkflowsClient(
        transport=WorkflowsGrpcTransport(channel=grpc.insecure_channel(service.address))
    )
    executions = executions_v1.ExecutionsClient(
        transport=ExecutionsGrpcTransport(channel=grpc.insecure_channel(service.address))
    )
    try:
        yield Engine(loop, ctx, service, others, workflows, executions)
    finally:
        workflows.transport.close()
        executions.transport.close()
        run(service.stop())
        for other in reversed(list(others.values())):
            run(other.stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def engine() -> Iterator[Engine]:
    yield from _start_engine(SystemClock())


@pytest.fixture
def manual_engine() -> Iterator[Engine]:
    yield from _start_engine(ManualClock())
