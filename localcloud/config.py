"""Where each emulator listens, read once from the environment.

The variable names are the ones the clients read (``PUBSUB_EMULATOR_HOST``, ``GCE_METADATA_HOST``) or the
same convention for the services whose clients have none; ``saga_orchestrator``'s client factory reads the
same names, so a process that has this environment talks to the local cloud.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULTS: dict[str, str] = {
    "PUBSUB_EMULATOR_HOST": "127.0.0.1:8085",
    "CLOUD_TASKS_EMULATOR_HOST": "127.0.0.1:8123",
    "SECRET_MANAGER_EMULATOR_HOST": "127.0.0.1:8090",
    # Resource Manager's tags (gRPC); Google has no such variable (no client reads it), named as the others.
    "RESOURCE_MANAGER_EMULATOR_HOST": "127.0.0.1:8097",
    "WORKFLOWS_EMULATOR_HOST": "127.0.0.1:8788",
    # Callback endpoints and the admin pages of the Workflows engine (plain HTTP).
    "WORKFLOWS_HTTP_HOST": "127.0.0.1:8787",
    "GCE_METADATA_HOST": "127.0.0.1:8089",
    # Cloud Storage's JSON API (plain HTTP). google-cloud-storage reads this variable as a URL, scheme
    # included; a bare host:port is accepted here and handed to clients as http://host:port.
    "STORAGE_EMULATOR_HOST": "127.0.0.1:8094",
    # Cloud Logging's REST API (entries.write, entries.list); no Google client reads this name.
    "LOGGING_EMULATOR_HOST": "127.0.0.1:8092",
    # BigQuery's REST API (plain HTTP). google-cloud-bigquery reads this variable as its endpoint, a URL
    # (``google.cloud.bigquery._helpers._get_bigquery_host``); a bare host:port is accepted here and handed
    # to clients as http://host:port. Unset: this port when Pub/Sub has its default port, else a free one.
    "BIGQUERY_EMULATOR_HOST": "127.0.0.1:8093",
    # The REST surfaces of the gRPC emulators (plain HTTP; no Google client reads these names: a client
    # built with transport="rest" takes client_options={"api_endpoint": "http://HOST:PORT"}). Unset, an
    # emulator serves REST on this port when its gRPC address has its default port, else on a free port
    # of the same host (see ``LocalCloudConfig.rest_address``).
    "PUBSUB_REST_HOST": "127.0.0.1:8095",
    "CLOUD_TASKS_REST_HOST": "127.0.0.1:8124",
    "SECRET_MANAGER_REST_HOST": "127.0.0.1:8096",
    "RESOURCE_MANAGER_REST_HOST": "127.0.0.1:8098",
    "LOCALCLOUD_PROJECT": "local-project",
    "LOCALCLOUD_LOCATION": "us-central1",
}


@dataclass(frozen=True)
class LocalCloudConfig:
    pubsub: str
    tasks: str
    secretmanager: str
    workflows: str
    workflows_http: str
    metadata: str
    project_id: str
    location: str
    storage: str = DEFAULTS["STORAGE_EMULATOR_HOST"]  # host:port, without the scheme
    logging: str = DEFAULTS["LOGGING_EMULATOR_HOST"]
    bigquery: str = DEFAULTS["BIGQUERY_EMULATOR_HOST"]  # host:port, without the scheme
    # "" when the variable is unset: ``rest_address`` derives the address from the gRPC one.
    pubsub_rest: str = ""
    tasks_rest: str = ""
    secretmanager_rest: str = ""
    resourcemanager: str = DEFAULTS["RESOURCE_MANAGER_EMULATOR_HOST"]
    resourcemanager_rest: str = ""
    quotas: str = ""  # LOCALCLOUD_QUOTAS, parsed by ``localcloud.quotas.QuotaConfig.parse``

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LocalCloudConfig:
        source = os.environ if env is None else env

        def get(name: str) -> str:
            return source.get(name) or DEFAULTS[name]

        return cls(
            pubsub=get("PUBSUB_EMULATOR_HOST"),
            tasks=get("CLOUD_TASKS_EMULATOR_HOST"),
            secretmanager=get("SECRET_MANAGER_EMULATOR_HOST"),
            workflows=get("WORKFLOWS_EMULATOR_HOST"),
            workflows_http=get("WORKFLOWS_HTTP_HOST"),
            metadata=get("GCE_METADATA_HOST"),
            project_id=get("LOCALCLOUD_PROJECT"),
            location=get("LOCALCLOUD_LOCATION"),
            storage=get("STORAGE_EMULATOR_HOST").removeprefix("http://").rstrip("/"),
            logging=get("LOGGING_EMULATOR_HOST"),
            bigquery=source.get("BIGQUERY_EMULATOR_HOST", "").removeprefix("http://").rstrip("/")
            or _beside(source, "BIGQUERY_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST"),
            pubsub_rest=source.get("PUBSUB_REST_HOST", ""),
            tasks_rest=source.get("CLOUD_TASKS_REST_HOST", ""),
            secretmanager_rest=source.get("SECRET_MANAGER_REST_HOST", ""),
            resourcemanager=source.get("RESOURCE_MANAGER_EMULATOR_HOST")
            or _beside(source, "RESOURCE_MANAGER_EMULATOR_HOST", "SECRET_MANAGER_EMULATOR_HOST"),
            resourcemanager_rest=source.get("RESOURCE_MANAGER_REST_HOST", ""),
            quotas=source.get("LOCALCLOUD_QUOTAS", ""),
        )

    def rest_address(self, service: str) -> str:
        """Where the REST surface of ``service`` (``pubsub``, ``tasks``, ``secretmanager`` or
        ``resourcemanager``) listens, or
        ``""`` for nowhere: its variable when set; else, on the host of the gRPC address, the default REST
        port when the gRPC address has its default port (``localcloud serve``, ``make up``), a free port
        (0) when the gRPC port is 0 too, and nowhere when the gRPC port was chosen by the caller. A
        caller that picks its own ports (a test harness, a second local cloud) has reserved them for
        other processes too: a surface bound to a free port the kernel hands out could take one of them."""
        rest, grpc_variable, rest_variable = _REST[service]
        given = getattr(self, rest)
        if given:
            return str(given)
        host, _, port = getattr(self, service).rpartition(":")
        default_port = DEFAULTS[grpc_variable].rpartition(":")[2]
        if port == default_port:
            return f"{host or '127.0.0.1'}:{DEFAULTS[rest_variable].rpartition(':')[2]}"
        return f"{host or '127.0.0.1'}:0" if port == "0" else ""

    def client_environment(self) -> dict[str, str]:
        """The environment a process needs to use this local cloud with the unmodified clients."""
        return {
            "PUBSUB_EMULATOR_HOST": self.pubsub,
            "CLOUD_TASKS_EMULATOR_HOST": self.tasks,
            "SECRET_MANAGER_EMULATOR_HOST": self.secretmanager,
            "WORKFLOWS_EMULATOR_HOST": self.workflows,
            "WORKFLOWS_HTTP_HOST": self.workflows_http,
            # google-auth reads the first for every request and pings the second to detect "GCE".
            "GCE_METADATA_HOST": self.metadata,
            "GCE_METADATA_IP": self.metadata,
            "STORAGE_EMULATOR_HOST": f"http://{self.storage}",
            "GOOGLE_CLOUD_PROJECT": self.project_id,
            "PUBSUB_PROJECT_ID": self.project_id,
            "LOGGING_EMULATOR_HOST": self.logging,
            # google-cloud-bigquery reads it as a URL; a free port (0) is no address a client could use.
            **({} if self.bigquery.endswith(":0") else {"BIGQUERY_EMULATOR_HOST": f"http://{self.bigquery}"}),
        }


def _beside(source: Mapping[str, str], own: str, sibling: str) -> str:
    """The address of an emulator whose variable ``own`` is unset: its default while ``sibling`` keeps its
    default address, else a free port (0) on ``sibling``'s host — a caller that picked the ports of the
    emulators it knows of may hold the default for another local cloud (the ready line tells the port)."""
    given = source.get(sibling) or DEFAULTS[sibling]
    if given == DEFAULTS[sibling]:
        return DEFAULTS[own]
    return f"{given.rpartition(':')[0] or '127.0.0.1'}:0"


# service → (its REST field, its gRPC variable, its REST variable)
_REST = {
    "pubsub": ("pubsub_rest", "PUBSUB_EMULATOR_HOST", "PUBSUB_REST_HOST"),
    "tasks": ("tasks_rest", "CLOUD_TASKS_EMULATOR_HOST", "CLOUD_TASKS_REST_HOST"),
    "secretmanager": ("secretmanager_rest", "SECRET_MANAGER_EMULATOR_HOST", "SECRET_MANAGER_REST_HOST"),
    "resourcemanager": (
        "resourcemanager_rest",
        "RESOURCE_MANAGER_EMULATOR_HOST",
        "RESOURCE_MANAGER_REST_HOST",
    ),
}
