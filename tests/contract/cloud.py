"""The project's own emulators (Pub/Sub, Cloud Tasks, Secret Manager, Workflows) for tests of the library
and the functions: started on free ports, on an event loop in a background thread, so the synchronous
Google clients of ``saga_orchestrator.clients.ClientFactory`` (and the functions under test) call them
over real gRPC. Setting up and reading back goes through the same public APIs a user would call."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import threading
import warnings
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import tasks_v2, workflows_v1
from google.cloud.workflows import executions_v1
from saga_orchestrator.clients import ClientFactory

from localcloud.auth import TokenAuthority
from localcloud.config import LocalCloudConfig
from localcloud.runtime import Context, RunningService

SERVERS = {
    "PUBSUB_EMULATOR_HOST": "localcloud.pubsub.server",
    "CLOUD_TASKS_EMULATOR_HOST": "localcloud.tasks.server",
    "SECRET_MANAGER_EMULATOR_HOST": "localcloud.secretmanager.server",
    "WORKFLOWS_EMULATOR_HOST": "localcloud.workflows.service.server",
    "STORAGE_EMULATOR_HOST": "localcloud.storage.server",
}
# The bucket of start claims, created in every LocalCloud that runs Cloud Storage and named in its env.
START_BUCKET = "local-saga-starts"
# An execution of this workflow stays ACTIVE until it is cancelled (or an hour passes).
WAITING_WORKFLOW = "main:\n  params: [request]\n  steps:\n    - wait:\n        call: sys.sleep\n        args:\n          seconds: 3600\n"
# One key for every LocalCloud of the session: generating an RSA key per test would dominate the run.
_AUTHORITY = TokenAuthority(key_size=1024)


@dataclass(frozen=True)
class Published:
    data: bytes
    attributes: dict[str, str]
    message_id: str


class LocalCloud:
    """``services``: the ``*_EMULATOR_HOST`` variables of the emulators to start (default: all four)."""

    def __init__(self, services: tuple[str, ...] = tuple(SERVERS)) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        addresses = {name: "127.0.0.1:0" for name in SERVERS} | {"WORKFLOWS_HTTP_HOST": "127.0.0.1:0"}
        ctx = Context(config=LocalCloudConfig.from_env(addresses), authority=_AUTHORITY)
        self._services: list[RunningService] = []
        self.env: dict[str, str] = {}
        try:
            for variable in services:
                service = self._run(importlib.import_module(SERVERS[variable]).start(ctx))
                self._services.append(service)
                self.env[variable] = service.address
        except BaseException:
            self.close()
            raise
        if "STORAGE_EMULATOR_HOST" in self.env:
            self.env["SAGA_START_BUCKET"] = START_BUCKET
        self.clients = ClientFactory(self.env)
        if "STORAGE_EMULATOR_HOST" in self.env:
            self.clients.storage().create_bucket(START_BUCKET, project="local-project")
        self._subscriptions: dict[str, str] = {}

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    def close(self) -> None:
        if hasattr(self, "clients"):
            self.clients.close()
        for service in reversed(self._services):
            self._run(service.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    # --- Pub/Sub --------------------------------------------------------------------------------------

    def create_topic(self, topic: str) -> None:
        """Create ``topic`` with a subscription that ``published`` reads (what was published from now on)."""
        subscription = topic.replace("/topics/", "/subscriptions/") + "-test-reader"
        self.clients.publisher().create_topic(name=topic)
        self.clients.subscriber().create_subscription(name=subscription, topic=topic)
        self._subscriptions[topic] = subscription

    def published(self, topic: str) -> list[Published]:
        """Every message published to ``topic`` since ``create_topic`` not yet read, in order."""
        subscriber = self.clients.subscriber()
        subscription = self._subscriptions[topic]
        found: list[Published] = []
        while True:
            with warnings.catch_warnings():  # deprecated for waiting clients; a test must not wait
                warnings.simplefilter("ignore", DeprecationWarning)
                response = subscriber.pull(
                    subscription=subscription, max_messages=100, return_immediately=True
                )
            if not response.received_messages:
                return found
            for received in response.received_messages:
                message = received.message
                found.append(Published(bytes(message.data), dict(message.attributes), message.message_id))
            subscriber.acknowledge(
                subscription=subscription, ack_ids=[r.ack_id for r in response.received_messages]
            )

    # --- Secret Manager -------------------------------------------------------------------------------

    def add_secret_version(self, project: str, secret: str, value: bytes) -> None:
        client = self.clients.secrets()
        with contextlib.suppress(gexc.AlreadyExists):
            client.create_secret(
                request={
                    "parent": f"projects/{project}",
                    "secret_id": secret,
                    "secret": {"replication": {"automatic": {}}},
                }
            )
        client.add_secret_version(
            request={"parent": f"projects/{project}/secrets/{secret}", "payload": {"data": value}}
        )

    # --- Workflows ------------------------------------------------------------------------------------

    def deploy_workflow(self, workflow_path: str, source: str = WAITING_WORKFLOW) -> None:
        parent, _, workflow_id = workflow_path.rpartition("/workflows/")
        workflow = workflows_v1.Workflow(name=workflow_path, source_contents=source)
        operation = self.clients.workflows().create_workflow(
            parent=parent, workflow=workflow, workflow_id=workflow_id
        )
        operation.result(timeout=30)

    def executions(self, workflow_path: str) -> list[executions_v1.Execution]:
        """Every execution of the workflow, with its argument (oldest first)."""
        client = self.clients.executions()
        listed = client.list_executions(
            request=executions_v1.ListExecutionsRequest(parent=workflow_path, page_size=100)
        )
        return [client.get_execution(name=e.name) for e in reversed(list(listed))]

    @staticmethod
    def argument(execution: executions_v1.Execution) -> Any:
        return json.loads(execution.argument)

    # --- Cloud Tasks ----------------------------------------------------------------------------------

    def create_paused_queue(self, queue_path: str) -> None:
        """A queue that keeps its tasks (nothing is dispatched), so a test can read them back."""
        client = self.clients.tasks()
        parent = queue_path.rpartition("/queues/")[0]
        client.create_queue(parent=parent, queue=tasks_v2.Queue(name=queue_path))
        client.pause_queue(name=queue_path)

    def task(self, name: str) -> tasks_v2.Task:
        request = tasks_v2.GetTaskRequest(name=name, response_view=tasks_v2.Task.View.FULL)
        return self.clients.tasks().get_task(request=request)

    def tasks(self, queue_path: str) -> list[tasks_v2.Task]:
        listed = self.clients.tasks().list_tasks(parent=queue_path)
        return [self.task(t.name) for t in listed]


class StaticTokenSource:
    """Stands for ``ports.TokenSource`` (the metadata server's tokens): fixed tokens, and the audiences
    asked for."""

    def __init__(self, id_token: str = "test-id-token", access_token: str = "test-access-token") -> None:
        self._id_token = id_token
        self._access_token = access_token
        self.audiences: list[str] = []

    def id_token(self, audience: str) -> str:
        self.audiences.append(audience)
        return self._id_token

    def access_token(self) -> str:
        return self._access_token
