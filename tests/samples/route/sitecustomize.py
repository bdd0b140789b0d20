"""Routes Google's hostnames to the local cloud in a process that runs Google's samples unmodified.

The samples build their clients with no arguments (``tasks_v2.CloudTasksClient()``) or with Google's own
endpoint (``api_endpoint="secretmanager.us-central1.rep.googleapis.com"``), and some call the REST API with
``requests`` themselves. Only ``google-cloud-pubsub`` reads an emulator variable. So instead of changing the
samples, this module (put first on ``PYTHONPATH`` by ``tests/samples/run_samples.py``, imported by Python at
start-up as ``sitecustomize``) changes the two places every Google client goes through:

- gRPC: ``google.api_core.grpc_helpers.create_channel`` (every GAPIC gRPC transport opens its channel
  there) returns an insecure channel to the emulator when the target is one of the emulated services'
  hosts (``cloudtasks.googleapis.com``, ``secretmanager[.LOCATION.rep].googleapis.com``,
  ``[LOCATION-]pubsub.googleapis.com``, ``[LOCATION-]cloudresourcemanager.googleapis.com``), whatever
  the port;
- HTTP: ``requests.adapters.HTTPAdapter.send`` (the REST transports' ``AuthorizedSession`` and the samples'
  own ``requests.post``) sends a request for one of those hosts to the emulator's REST surface, over
  plain HTTP, path and query unchanged.

``bigquery.googleapis.com`` goes the HTTP way only (to ``BIGQUERY_EMULATOR_HOST``). Any other
``*.googleapis.com`` host fails at once with "HOST is not emulated by the local cloud" (gRPC: when the
channel is opened; HTTP: a 501 UNIMPLEMENTED answer, which no client retries), instead of retrying against
a network this machine may not have.

Credentials stay Google's: ``google.auth.default()`` finds the local cloud's metadata server
(``GCE_METADATA_HOST``), as on a Google Cloud machine. With ``LOCALCLOUD_SAMPLES_TRANSPORT=rest``, a client of
Cloud Tasks (v2, v2beta3), Secret Manager, Resource Manager's tags, or a Pub/Sub publisher or schema client
built without a ``transport`` gets ``transport="rest"`` (the samples never choose one); Pub/Sub's subscriber
stays on gRPC, as ``subscribe()`` needs StreamingPull, which has no REST binding. Nothing here runs unless
``LOCALCLOUD_SAMPLES_ROUTE`` is set, so the directory is harmless on any other path.
"""

from __future__ import annotations

import functools
import os
import re
import urllib.parse
from typing import Any

_SERVICES = {
    "cloudtasks": ("CLOUD_TASKS_EMULATOR_HOST", "CLOUD_TASKS_REST_HOST"),
    "secretmanager": ("SECRET_MANAGER_EMULATOR_HOST", "SECRET_MANAGER_REST_HOST"),
    "pubsub": ("PUBSUB_GRPC_HOST", "PUBSUB_REST_HOST"),
    "cloudresourcemanager": ("RESOURCE_MANAGER_EMULATOR_HOST", "RESOURCE_MANAGER_REST_HOST"),
    # REST only (no gRPC address); the variable, which google-cloud-bigquery reads too, is a URL.
    "bigquery": ("", "BIGQUERY_EMULATOR_HOST"),
}
# Global endpoints, locational ones (``us-east1-pubsub.googleapis.com``) and regional ones
# (``secretmanager.us-central1.rep.googleapis.com``).
_HOST = re.compile(
    r"^(?:[a-z0-9-]+-)?(cloudtasks|secretmanager|pubsub|cloudresourcemanager|bigquery)"
    r"(?:\.[a-z0-9-]+\.rep)?\.googleapis\.com$"
)


class NotEmulatedError(RuntimeError):
    def __init__(self, host: str) -> None:
        super().__init__(f"{host} is not emulated by the local cloud")
        self.host = host


def _service(host: str) -> str | None:
    match = _HOST.match(host)
    return match.group(1) if match else None


def _address(service: str, rest: bool) -> str:
    return os.environ.get(_SERVICES[service][1 if rest else 0], "").removeprefix("http://")


def _route_grpc() -> None:
    import grpc
    from google.api_core import grpc_helpers

    original = grpc_helpers.create_channel

    @functools.wraps(original)
    def create_channel(target: str, *args: Any, **kwargs: Any) -> Any:
        host = target.rpartition(":")[0] if ":" in target else target
        service = _service(host)
        address = _address(service, rest=False) if service else ""
        if address:
            return grpc.insecure_channel(address)
        if host.endswith(".googleapis.com"):
            raise NotEmulatedError(host)
        return original(target, *args, **kwargs)

    grpc_helpers.create_channel = create_channel


def _route_http() -> None:
    import requests.adapters

    original = requests.adapters.HTTPAdapter.send

    @functools.wraps(original)
    def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        parts = urllib.parse.urlsplit(request.url)
        service = _service(parts.hostname or "")
        address = _address(service, rest=True) if service else ""
        if address:
            request.url = urllib.parse.urlunsplit(("http", address, parts.path, parts.query, parts.fragment))
        elif (parts.hostname or "").endswith(".googleapis.com"):
            return _not_emulated(request, parts.hostname or "")
        return original(self, request, *args, **kwargs)

    requests.adapters.HTTPAdapter.send = send  # type: ignore[method-assign]


def _not_emulated(request: Any, host: str) -> Any:
    """The answer of a Google API for a method it does not serve: 501 UNIMPLEMENTED, which no client retries."""
    import json

    import requests

    response = requests.Response()
    response.status_code = 501
    response.reason = "Not Implemented"
    response.url = request.url
    response.request = request
    response.headers["Content-Type"] = "application/json; charset=UTF-8"
    error = {"code": 501, "message": str(NotEmulatedError(host)), "status": "UNIMPLEMENTED"}
    response._content = json.dumps({"error": error}).encode()
    return response


def _prefer_rest() -> None:
    import importlib

    for module, name in (
        ("google.cloud.tasks_v2.services.cloud_tasks.client", "CloudTasksClient"),
        ("google.cloud.tasks_v2beta3.services.cloud_tasks.client", "CloudTasksClient"),
        (
            "google.cloud.secretmanager_v1.services.secret_manager_service.client",
            "SecretManagerServiceClient",
        ),
        ("google.pubsub_v1.services.publisher.client", "PublisherClient"),
        ("google.pubsub_v1.services.schema_service.client", "SchemaServiceClient"),
        *(
            (f"google.cloud.resourcemanager_v3.services.tag_{kind}s.client", f"Tag{kind.title()}sClient")
            for kind in ("key", "value", "binding")
        ),
    ):
        try:
            cls = getattr(importlib.import_module(module), name)
        except ImportError:
            continue
        cls.__init__ = _with_rest(cls.__init__)


def _with_rest(init: Any) -> Any:
    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("transport") is None and not args:
            kwargs["transport"] = "rest"
        init(self, *args, **kwargs)

    return __init__


if os.environ.get("LOCALCLOUD_SAMPLES_ROUTE"):
    _route_grpc()
    _route_http()
    if os.environ.get("LOCALCLOUD_SAMPLES_TRANSPORT") == "rest":
        _prefer_rest()
