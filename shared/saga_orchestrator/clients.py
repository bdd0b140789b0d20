"""THE client factory: the one place that decides between Google's endpoints and local emulators.

``ClientFactory(env)`` reads only the mapping it is given. When ``PUBSUB_EMULATOR_HOST``,
``CLOUD_TASKS_EMULATOR_HOST``, ``SECRET_MANAGER_EMULATOR_HOST`` or ``WORKFLOWS_EMULATOR_HOST`` is set, the
matching client talks gRPC over an insecure channel to that ``host:port`` (no credentials). Otherwise the
real endpoint with Application Default Credentials. ``STORAGE_EMULATOR_HOST`` (a URL, ``http://host:port``, as
google-cloud-storage itself reads it; a bare ``host:port`` means ``http://``) points the Cloud Storage
client at that JSON API endpoint, without credentials, as the client does on its own when it finds the
variable in the process environment. Clients are built lazily, once per factory, and are
safe to share between threads.

``default_factory()`` is built from ``os.environ`` on first use; it serves the seed's Python API when no
factory is passed (``SagaOrchestrator(...)``, ``TaskManager(...)``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from saga_orchestrator.auth import GoogleTokenSource
from saga_orchestrator.ports import TokenSource

if TYPE_CHECKING:
    import grpc
    from google.cloud import secretmanager, tasks_v2, workflows_v1
    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient
    from google.cloud.storage import Client as StorageClient
    from google.cloud.workflows import executions_v1
    from google.pubsub_v1 import PublisherClient as PublisherApi

    from saga_orchestrator.objects import ObjectStore

T = TypeVar("T")

EMULATOR_VARS = {
    "pubsub": "PUBSUB_EMULATOR_HOST",
    "tasks": "CLOUD_TASKS_EMULATOR_HOST",
    "secrets": "SECRET_MANAGER_EMULATOR_HOST",
    "workflows": "WORKFLOWS_EMULATOR_HOST",
    "storage": "STORAGE_EMULATOR_HOST",
}


class ClientFactory:
    def __init__(self, env: Mapping[str, str], *, tokens: TokenSource | None = None) -> None:
        self._env = dict(env)
        self._clients: dict[str, Any] = {}
        self._channels: list[grpc.Channel] = []
        self._lock = threading.Lock()
        self._tokens = tokens

    @property
    def env(self) -> Mapping[str, str]:
        """The environment this factory was built from (also the source of ``Settings`` for the seed API)."""
        return self._env

    def emulator_host(self, service: str) -> str | None:
        """``host:port`` of the emulator for ``service`` (pubsub, tasks, secrets, workflows; for storage
        the URL), or None."""
        return self._env.get(EMULATOR_VARS[service]) or None

    def _get(self, key: str, build: Callable[[], T]) -> T:
        with self._lock:
            if key not in self._clients:
                self._clients[key] = build()
            return self._clients[key]  # type: ignore[no-any-return,unused-ignore]

    def _channel(self, host: str) -> grpc.Channel:
        import grpc

        channel = grpc.insecure_channel(host)
        self._channels.append(channel)
        return channel

    def executions(self) -> executions_v1.ExecutionsClient:
        def build() -> executions_v1.ExecutionsClient:
            from google.cloud.workflows import executions_v1
            from google.cloud.workflows.executions_v1.services.executions.transports import (
                ExecutionsGrpcTransport,
            )

            host = self.emulator_host("workflows")
            if host:
                return executions_v1.ExecutionsClient(
                    transport=ExecutionsGrpcTransport(channel=self._channel(host))
                )
            return executions_v1.ExecutionsClient()

        return self._get("executions", build)

    def workflows(self) -> workflows_v1.WorkflowsClient:
        """Deploying and describing workflows (the local runner's provisioning)."""

        def build() -> workflows_v1.WorkflowsClient:
            from google.cloud import workflows_v1
            from google.cloud.workflows_v1.services.workflows.transports import WorkflowsGrpcTransport

            host = self.emulator_host("workflows")
            if host:
                return workflows_v1.WorkflowsClient(
                    transport=WorkflowsGrpcTransport(channel=self._channel(host))
                )
            return workflows_v1.WorkflowsClient()

        return self._get("workflows", build)

    def tasks(self) -> tasks_v2.CloudTasksClient:
        def build() -> tasks_v2.CloudTasksClient:
            from google.cloud import tasks_v2
            from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

            host = self.emulator_host("tasks")
            if host:
                return tasks_v2.CloudTasksClient(
                    transport=CloudTasksGrpcTransport(channel=self._channel(host))
                )
            return tasks_v2.CloudTasksClient()

        return self._get("tasks", build)

    def publisher(self) -> PublisherClient:
        """The client library's publisher: it batches (a message waits up to 10 ms for others)."""

        def build() -> PublisherClient:
            from google.cloud.pubsub_v1 import PublisherClient
            from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

            host = self.emulator_host("pubsub")
            if host:
                return PublisherClient(transport=PublisherGrpcTransport(channel=self._channel(host)))
            return PublisherClient()

        return self._get("publisher", build)

    def publisher_api(self) -> PublisherApi:
        """The generated Pub/Sub Publisher client (``google.pubsub_v1``): one ``Publish`` call per
        request, with the method's own retry and timeout policy, and no batching thread; for callers that
        publish one message and wait for its id."""

        def build() -> PublisherApi:
            from google.pubsub_v1 import PublisherClient as Api
            from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

            host = self.emulator_host("pubsub")
            if host:
                return Api(transport=PublisherGrpcTransport(channel=self._channel(host)))
            return Api()

        return self._get("publisher-api", build)

    def subscriber(self) -> SubscriberClient:
        def build() -> SubscriberClient:
            from google.cloud.pubsub_v1 import SubscriberClient
            from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

            host = self.emulator_host("pubsub")
            if host:
                return SubscriberClient(transport=SubscriberGrpcTransport(channel=self._channel(host)))
            return SubscriberClient()

        return self._get("subscriber", build)

    def secrets(self) -> secretmanager.SecretManagerServiceClient:
        def build() -> secretmanager.SecretManagerServiceClient:
            from google.cloud import secretmanager
            from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
                SecretManagerServiceGrpcTransport,
            )

            host = self.emulator_host("secrets")
            if host:
                return secretmanager.SecretManagerServiceClient(
                    transport=SecretManagerServiceGrpcTransport(channel=self._channel(host))
                )
            return secretmanager.SecretManagerServiceClient()

        return self._get("secrets", build)

    def _storage_endpoint(self) -> str | None:
        """The Cloud Storage emulator's URL (``STORAGE_EMULATOR_HOST``; a bare ``host:port`` is http)."""
        endpoint = self.emulator_host("storage")
        if not endpoint:
            return None
        return endpoint if "://" in endpoint else f"http://{endpoint}"

    def storage(self) -> StorageClient:
        """Cloud Storage (JSON API over HTTP; the client is shared by threads, each request on a pooled
        connection). It creates buckets (the local stack's provisioning, tests): google-cloud-storage is in
        requirements-local.txt, not the functions' runtime; the start claims use ``objects()``."""

        def build() -> StorageClient:
            from google.cloud.storage import Client

            url = self._storage_endpoint()
            if url:
                from google.auth.credentials import AnonymousCredentials

                return Client(
                    project=None, credentials=AnonymousCredentials(), client_options={"api_endpoint": url}
                )
            return Client()

        return self._get("storage", build)

    def objects(self) -> ObjectStore:
        """Cloud Storage objects as the start claims use them (``objects.ObjectStore``): an access token
        from ``tokens()`` for Google's endpoint, none for the emulator."""
        from saga_orchestrator.httpclient import HttpClient
        from saga_orchestrator.objects import ObjectStore

        url = self._storage_endpoint()
        tokens = None if url else self.tokens()  # outside _get: its lock is not reentrant
        return self._get("objects", lambda: ObjectStore(HttpClient.from_env(self._env), tokens, endpoint=url))

    def tokens(self) -> TokenSource:
        """ID and access tokens from google-auth (the metadata server named by ``GCE_METADATA_HOST`` locally)."""
        return self._get("tokens", lambda: self._tokens or GoogleTokenSource())

    def close(self) -> None:
        """Close the gRPC channels this factory opened (emulator clients only)."""
        with self._lock:
            publisher = self._clients.get("publisher")
            if publisher is not None:
                publisher.stop()
            storage_client = self._clients.get("storage")
            if storage_client is not None:
                storage_client.close()
            for channel in self._channels:
                channel.close()
            self._channels.clear()
            self._clients.clear()


_default: ClientFactory | None = None
_default_lock = threading.Lock()


def default_factory() -> ClientFactory:
    """The process-wide factory, built from ``os.environ`` the first time it is needed."""
    global _default
    with _default_lock:
        if _default is None:
            _default = ClientFactory(os.environ)
        return _default


def set_default_factory(factory: ClientFactory | None) -> None:
    """Replace (or, with None, forget) the process-wide factory."""
    global _default
    with _default_lock:
        _default = factory
