"""The ``Host`` of executions run by the Executions service: callbacks over HTTP, connectors to the local
emulators, tokens of the workflow's service account from the local token authority, ``sys.log`` as
Cloud Logging JSON lines, and the internal/external split of billable steps.

Billing (https://cloud.google.com/workflows/pricing): calls to ``*.googleapis.com``, ``*.run.app`` and
``*.cloudfunctions.net`` are internal steps, any other URL is external. Locally the Cloud Functions are
plain ``http://127.0.0.1:PORT`` servers, so the URL prefixes listed (comma-separated) in
``LOCALCLOUD_INTERNAL_URL_PREFIXES`` count as internal too, and local step counts match production.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from localcloud.auth import TokenAuthority
from localcloud.clock import Clock
from localcloud.workflows.engine.host import DEFAULT_CALLBACK_TIMEOUT_SECONDS, ExecutionInfo
from localcloud.workflows.lang.errors import WorkflowError
from localcloud.workflows.service.callbacks import CALLBACK_METHODS, CallbackRegistry, callback_for
from localcloud.workflows.service.connectors import Connectors

INTERNAL_PREFIXES_ENV = "LOCALCLOUD_INTERNAL_URL_PREFIXES"
INTERNAL_HOST_SUFFIXES = (".googleapis.com", ".run.app", ".cloudfunctions.net")
DEFAULT_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)

execution_log = logging.getLogger("localcloud.workflows.executions")


def internal_prefixes_from_env(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    source = os.environ if env is None else env
    raw = source.get(INTERNAL_PREFIXES_ENV, "")
    return tuple(p.strip() for p in raw.split(",") if p.strip())


def is_internal_url(url: str, internal_prefixes: tuple[str, ...] = ()) -> bool:
    if any(url.startswith(prefix) for prefix in internal_prefixes):
        return True
    host = (urlsplit(url).hostname or "").lower()
    return host == "googleapis.com" or host.endswith(INTERNAL_HOST_SUFFIXES)


@dataclass(frozen=True)
class HostServices:
    """What every execution's host shares."""

    callbacks: CallbackRegistry
    connectors: Connectors
    authority: TokenAuthority
    clock: Clock
    internal_prefixes: tuple[str, ...] = ()
    http_session: aiohttp.ClientSession | None = None  # shared by every execution's ``http.*`` calls


class ServiceHost:
    __slots__ = ("clock", "execution_name", "info", "services")

    def __init__(self, info: ExecutionInfo, execution_name: str, services: HostServices) -> None:
        self.info = info
        self.clock = services.clock
        self.execution_name = execution_name
        self.services = services

    @property
    def http_session(self) -> aiohttp.ClientSession | None:
        return self.services.http_session

    def id_token(self, audience: str) -> str:
        return self.services.authority.mint_id_token(audience, self.info.service_account)

    def access_token(self, scopes: tuple[str, ...] = ()) -> str:
        return self.services.authority.mint_access_token(
            self.info.service_account, tuple(scopes) or DEFAULT_SCOPES
        ).token

    async def create_callback_endpoint(self, http_callback_method: str = "POST") -> dict[str, Any]:
        if not isinstance(http_callback_method, str):
            raise WorkflowError.tagged("TypeError", "http_callback_method must be a string")
        method = http_callback_method.upper()
        if method not in CALLBACK_METHODS:
            raise WorkflowError.tagged(
                "ValueError",
                f"unsupported http_callback_method {http_callback_method!r}; expected one of "
                + ", ".join(sorted(CALLBACK_METHODS)),
            )
        try:
            callback = self.services.callbacks.create(self.execution_name, method)
        except KeyError:
            raise WorkflowError.tagged("SystemError", "the execution is no longer running") from None
        return {"url": callback.url}

    async def await_callback(
        self, callback: Mapping[str, Any], timeout: float = DEFAULT_CALLBACK_TIMEOUT_SECONDS
    ) -> dict[str, Any]:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise WorkflowError.tagged("TypeError", "timeout must be a number of seconds")
        if timeout < 0:
            raise WorkflowError.tagged("ValueError", "timeout must not be negative")
        found = callback_for(self.services.callbacks, self.execution_name, callback)
        return await self.services.callbacks.wait(found, float(timeout), self.clock)

    async def call_connector(
        self, name: str, args: Mapping[str, Any], connector_params: Mapping[str, Any] | None = None
    ) -> Any:
        if isinstance(args, Mapping) and "connector_params" in args and connector_params is None:
            params = args.get("connector_params")
            connector_params = params if isinstance(params, Mapping) else None
            args = {k: v for k, v in args.items() if k != "connector_params"}
        return await self.services.connectors.call(
            name,
            args,
            project_id=self.info.project_id,
            location=self.info.location,
            connector_params=connector_params,
        )

    def log(self, severity: str, payload: Any) -> None:
        entry: dict[str, Any] = {"severity": (severity or "DEFAULT").upper()}
        if isinstance(payload, str):
            entry["message"] = payload
        elif isinstance(payload, Mapping):
            entry.update({str(k): v for k, v in payload.items() if k not in ("severity",)})
            entry.setdefault("message", "")
        else:
            entry["message"] = json.dumps(payload, default=str)
        entry["logging.googleapis.com/labels"] = {
            "workflows.googleapis.com/execution_id": self.info.execution_id,
            "workflows.googleapis.com/workflow_id": self.info.workflow_id,
            "workflows.googleapis.com/revision_id": self.info.revision_id,
        }
        execution_log.log(_python_level(entry["severity"]), json.dumps(entry, default=str))

    def is_internal_url(self, url: str) -> bool:
        return is_internal_url(url, self.services.internal_prefixes)


_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "NOTICE": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
    "ALERT": logging.CRITICAL,
    "EMERGENCY": logging.CRITICAL,
}


def _python_level(severity: str) -> int:
    return _LEVELS.get(severity, logging.INFO)
