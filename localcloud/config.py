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
    "WORKFLOWS_EMULATOR_HOST": "127.0.0.1:8788",
    # Callback endpoints and the admin pages of the Workflows engine (plain HTTP).
    "WORKFLOWS_HTTP_HOST": "127.0.0.1:8787",
    "GCE_METADATA_HOST": "127.0.0.1:8089",
    # Cloud Storage's JSON API (plain HTTP). google-cloud-storage reads this variable as a URL, scheme
    # included; a bare host:port is accepted here and handed to clients as http://host:port.
    "STORAGE_EMULATOR_HOST": "127.0.0.1:8094",
    # Cloud Logging's REST API (entries.write, entries.list); no Google client reads this name.
    "LOGGING_EMULATOR_HOST": "127.0.0.1:8092",
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
        )

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
        }
