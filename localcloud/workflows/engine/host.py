"""The seam between the interpreter and the world around an execution.

The interpreter (``interpreter.py`` and the standard library) only ever reaches outside an execution
through a ``Host``: callbacks, connectors, tokens for ``http.*`` with ``auth``, the clock, environment
variables and logging. The Executions service supplies a host whose callbacks are served over HTTP and
whose connectors call the local emulators (``service/connectors.py``); ``StandaloneHost`` (one-shot ``workflows run``, tests) keeps
callbacks in memory and refuses connectors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from localcloud._project import project_number as number_for
from localcloud.clock import Clock

# Kept for the callers of ``load_workflow``, which pass it on to the deploy-time checks: a well-formed
# connector name deploys whether or not it is listed (as on Google, a workflow that names a connector
# deploys and runs its other paths). Which connectors run, and against which emulator, is decided when one
# is called, by the Executions service's ``connectors.py``, from the APIs' HTTP annotations.
SUPPORTED_CONNECTORS: frozenset[str] = frozenset()

# The Kubernetes API connector's functions, connectors without the ``googleapis.`` prefix
# (https://cloud.google.com/workflows/docs/reference/connectors/gke/Overview). They deploy; none is emulated,
# so calling one fails at run time like any connector this engine does not route.
KUBERNETES_CONNECTORS = frozenset({"gke.await_job", "gke.create_job", "gke.delete_job", "gke.request"})

# Connectors that may also be called inside an expression, with their parameters in positional order
# (https://cloud.google.com/workflows/docs/reference/googleapis/secretmanager/v1/projects.secrets.versions/accessString;
# Google's connector_secretmanager sample calls ``accessString(secret_id, version, project_id)``); the first
# is required.
EXPRESSION_CONNECTORS: Mapping[str, tuple[str, ...]] = {
    "googleapis.secretmanager.v1.projects.secrets.versions.accessString": (
        "secret_id",
        "version",
        "project_id",
    ),
}


def is_connector(name: str) -> bool:
    """Whether a call step's function is a connector (routed or not) rather than a built-in."""
    return name.startswith("googleapis.") or name in KUBERNETES_CONNECTORS


# await_callback's documented default (https://cloud.google.com/workflows/docs/reference/stdlib/events/await_callback)
DEFAULT_CALLBACK_TIMEOUT_SECONDS = 43200.0


@dataclass(frozen=True)
class ExecutionInfo:
    """What ``sys.get_env`` returns for the built-in ``GOOGLE_CLOUD_*`` variables."""

    project_id: str = "local-project"
    project_number: str = ""  # "": the local cloud's number for project_id (localcloud._project)
    location: str = "us-central1"
    workflow_id: str = "workflow"
    revision_id: str = "000001-abc"
    execution_id: str = "00000000-0000-0000-0000-000000000000"
    service_account: str = "saga-runtime@local-project.iam.gserviceaccount.com"
    user_env: Mapping[str, str] = field(default_factory=dict)

    def builtin_env(self) -> dict[str, str]:
        return {
            "GOOGLE_CLOUD_LOCATION": self.location,
            "GOOGLE_CLOUD_PROJECT_ID": self.project_id,
            "GOOGLE_CLOUD_PROJECT_NUMBER": number_for(self.project_id, self.project_number),
            "GOOGLE_CLOUD_SERVICE_ACCOUNT_NAME": self.service_account,
            "GOOGLE_CLOUD_WORKFLOW_EXECUTION_ID": self.execution_id,
            "GOOGLE_CLOUD_WORKFLOW_ID": self.workflow_id,
            "GOOGLE_CLOUD_WORKFLOW_REVISION_ID": self.revision_id,
        }


class Host(Protocol):
    info: ExecutionInfo
    clock: Clock

    def id_token(self, audience: str) -> str:
        """An OIDC ID token of the workflow's service account for ``http.*`` with ``auth: {type: OIDC}``."""
        ...

    def access_token(self, scopes: tuple[str, ...] = ()) -> str:
        """An OAuth2 access token for ``http.*`` with ``auth: {type: OAuth2}``."""
        ...

    async def create_callback_endpoint(self, http_callback_method: str) -> dict[str, Any]:
        """Returns ``{"url": ...}``. Requests that reach the URL before anyone waits are kept."""
        ...

    async def await_callback(self, callback: Mapping[str, Any], timeout: float) -> dict[str, Any]:
        """Returns ``{"http_request": {body, headers, method, query, url}, "received_time", "type": "HTTP"}``;
        raises ``WorkflowError`` tagged ``TimeoutError`` when ``timeout`` seconds pass first."""
        ...

    async def call_connector(self, name: str, args: Mapping[str, Any]) -> Any:
        """Returns the API's response resource directly, as real connectors do; raises ``WorkflowError``
        (``HttpError`` with the API's code and body) when the API answers with an error."""
        ...

    def log(self, severity: str, payload: Any) -> None: ...

    def is_internal_url(self, url: str) -> bool:
        """Whether a call to ``url`` is billed as an internal step (Google APIs, Cloud Run, Cloud Functions)
        or an external one (https://cloud.google.com/workflows/pricing). The service host also treats the
        local stand-ins of Cloud Functions as internal, so local step counts match production."""
        ...
