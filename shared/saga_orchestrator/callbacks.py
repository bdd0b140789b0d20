"""The Workflows callbacks adapter for operators: find a saga execution's callback endpoint and send it a
message, as the caller (an OAuth2 access token, like every callback).

- ``callbacks.list``: ``GET {base}/v1/{execution}/callbacks``
  (https://cloud.google.com/workflows/docs/reference/executions/rest/v1/projects.locations.workflows.executions.callbacks/list);
  the caller needs ``workflows.callbacks.list``.
- ``callbacks.sendHttpCallback``: ``POST {base}/v1/{callback name}`` with a JSON body
  (https://cloud.google.com/workflows/docs/reference/executions/rest/v1/projects.locations.workflows.executions.callbacks/sendHttpCallback);
  the caller needs ``workflows.callbacks.send`` (https://cloud.google.com/workflows/docs/access-control).
  Workflows buffers a payload that arrives while no step waits (the Callback's ``availablePayloads``).

``base`` is ``https://workflowexecutions.googleapis.com``, or ``http://<WORKFLOWS_HTTP_HOST>`` when the
local engine serves the HTTP API (``callbacks_base_url``). The caller's credentials come from the
metadata server named by ``GCE_METADATA_HOST`` when the environment names one (the local cloud's, or a
GCE/Cloud Run one), else from Application Default Credentials; ``identity`` is the caller's email.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from saga_orchestrator.errors import CancelDeliveryError, SagaError, SagaNotRunningError
from saga_orchestrator.ports import HttpCallError, HttpTransport

GOOGLE_BASE_URL = "https://workflowexecutions.googleapis.com"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
TIMEOUT_SECONDS = 10.0
MAX_ANSWER_BYTES = 1024 * 1024
# A saga opens its callback endpoint in its first steps; a cancel sent just after the start waits this
# long (seconds) for it to appear.
ENDPOINT_WAIT_SECONDS = 10.0


def callbacks_base_url(env: Mapping[str, str]) -> str:
    host = (env.get("WORKFLOWS_HTTP_HOST") or "").strip()
    return f"http://{host}" if host else GOOGLE_BASE_URL


class CallerCredentials(Protocol):
    def access_token(self) -> str: ...

    def identity(self) -> str:
        """The caller's email (a service account's, or a person's)."""
        ...


class MetadataServerCredentials:
    """The default service account of the metadata server at ``host`` (``computeMetadata/v1``)."""

    def __init__(self, host: str, http: HttpTransport) -> None:
        self._root = f"http://{host}/computeMetadata/v1/instance/service-accounts/default"
        self._http = http

    def _get(self, path: str) -> bytes:
        answer = self._http.request(
            "GET",
            f"{self._root}/{path}",
            headers={"Metadata-Flavor": "Google"},
            body=None,
            connect_timeout=TIMEOUT_SECONDS,
            read_timeout=TIMEOUT_SECONDS,
            max_body=MAX_ANSWER_BYTES,
        )
        if answer.status != 200:
            raise CancelDeliveryError("", f"metadata server answered HTTP {answer.status} for {path}")
        return answer.body

    def access_token(self) -> str:
        return str(json.loads(self._get("token"))["access_token"])

    def identity(self) -> str:
        return self._get("email").decode("utf-8").strip()


class DefaultCredentials:
    """Application Default Credentials (google-auth); ``identity`` is the service account's email, or
    the ``email`` that Google's tokeninfo endpoint gives for the token (a person's gcloud login)."""

    def __init__(self, http: HttpTransport) -> None:
        self._http = http
        self._credentials: Any = None

    def access_token(self) -> str:
        import google.auth
        import google.auth.transport.requests

        if self._credentials is None:
            self._credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
        if not self._credentials.valid:
            self._credentials.refresh(google.auth.transport.requests.Request())
        return str(self._credentials.token)

    def identity(self) -> str:
        token = self.access_token()
        email = getattr(self._credentials, "service_account_email", None)
        if isinstance(email, str) and "@" in email:
            return email
        answer = self._http.request(
            "GET",
            f"https://oauth2.googleapis.com/tokeninfo?access_token={token}",
            headers={},
            body=None,
            connect_timeout=TIMEOUT_SECONDS,
            read_timeout=TIMEOUT_SECONDS,
            max_body=MAX_ANSWER_BYTES,
        )
        found = json.loads(answer.body).get("email") if answer.status == 200 else None
        return str(found) if found else "unknown"


class ExecutionCallbacks:
    def __init__(
        self,
        base_url: str,
        http: HttpTransport,
        credentials: CallerCredentials,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._http = http
        self._credentials = credentials
        self._sleep = sleep
        self._clock = clock

    def identity(self) -> str:
        return self._credentials.identity()

    def send(self, execution: str, body: dict[str, Any]) -> str:
        """POST ``body`` to the execution's one callback endpoint; returns the callback's name. Raises
        ``SagaNotRunningError`` when the execution ended (404), ``CancelDeliveryError`` otherwise."""
        name = self._endpoint(execution)
        status, text = self._call("POST", f"{self._base}/v1/{name}", body)
        if status == 404:
            raise SagaNotRunningError(execution, execution, "(ended before the message arrived)")
        if not 200 <= status < 300:
            raise CancelDeliveryError(execution, f"callback answered HTTP {status}: {text[:300]}", status)
        return name

    def step_entries(self, execution: str, *, limit: int = 10000) -> list[dict[str, Any]]:
        """The execution's step entries in order (``stepEntries.list``, every page, at most ``limit``;
        https://cloud.google.com/workflows/docs/reference/executions/rest/v1/projects.locations.workflows.executions.stepEntries/list).
        The caller needs ``workflows.executions.get``; an unknown execution gives []. Raises
        ``SagaError`` when the API refuses."""
        entries: list[dict[str, Any]] = []
        token = ""
        while len(entries) < limit:
            query = urllib.parse.urlencode({"pageSize": min(limit - len(entries), 1000), "pageToken": token})
            status, text = self._call("GET", f"{self._base}/v1/{execution}/stepEntries?{query}", None)
            if status == 404:
                return entries
            if not 200 <= status < 300:
                raise SagaError(f"stepEntries.list of {execution} answered HTTP {status}: {text[:300]}")
            page = json.loads(text or "{}")
            entries += page.get("stepEntries") or []
            token = page.get("nextPageToken") or ""
            if not token:
                break
        return entries[:limit]

    def _endpoint(self, execution: str) -> str:
        deadline = self._clock() + ENDPOINT_WAIT_SECONDS
        while True:
            status, text = self._call("GET", f"{self._base}/v1/{execution}/callbacks", None)
            if status == 404:
                raise SagaNotRunningError(execution, execution, "(no longer running)")
            if not 200 <= status < 300:
                raise CancelDeliveryError(execution, f"callbacks.list answered HTTP {status}: {text[:300]}")
            callbacks = json.loads(text or "{}").get("callbacks") or []
            if callbacks:
                return str(callbacks[0]["name"])
            if self._clock() >= deadline:
                raise CancelDeliveryError(execution, "the execution has no callback endpoint")
            self._sleep(0.2)

    def _call(self, method: str, url: str, body: dict[str, Any] | None) -> tuple[int, str]:
        headers = {"Authorization": f"Bearer {self._credentials.access_token()}"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body, separators=(",", ":")).encode("utf-8")
        try:
            answer = self._http.request(
                method,
                url,
                headers=headers,
                body=data,
                connect_timeout=TIMEOUT_SECONDS,
                read_timeout=TIMEOUT_SECONDS,
                max_body=MAX_ANSWER_BYTES,
            )
        except HttpCallError as error:
            raise CancelDeliveryError(url, error.message) from None
        return answer.status, answer.body.decode("utf-8", errors="replace")


def operator_callbacks(env: Mapping[str, str], http: HttpTransport) -> ExecutionCallbacks:
    """Callbacks as the operator: the metadata server's account when ``GCE_METADATA_HOST`` is set."""
    host = (env.get("GCE_METADATA_HOST") or "").strip()
    credentials: CallerCredentials = (
        MetadataServerCredentials(host, http) if host else DefaultCredentials(http)
    )
    return ExecutionCallbacks(callbacks_base_url(env), http, credentials)
