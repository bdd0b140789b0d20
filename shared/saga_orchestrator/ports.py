"""The ports of the use cases: what the starter, the executor and completion need from the outside world,
as ``Protocol``s, with the values that cross them.

The use cases (``starter``, ``executor``, ``completion``, ``participant``) import these and nothing that
talks to Google or the network; the adapters (``executions``, ``pubsub``, ``secrets``, ``auth``,
``httpclient``, ``clients``) implement them, and ``runtime`` wires one to the other. A test of a use
case may stand in for a port with a small object of its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from saga_orchestrator.events import PubsubMessage
    from saga_orchestrator.model import SagaRequest, SecretRef


# --- saga executions (Workflows) ---------------------------------------------------------------------


@dataclass(frozen=True)
class StartOutcome:
    execution_name: str
    # False: another start of the same saga won (this one found it, or created one and yielded).
    created: bool


@dataclass(frozen=True)
class SagaStatus:
    execution_name: str
    # ACTIVE, SUCCEEDED, FAILED, CANCELLED, UNAVAILABLE, QUEUED (Executions API states)
    state: str
    # The workflow's result (the saga result) when SUCCEEDED, parsed from JSON.
    result: Any = None
    # The execution error's payload (parsed JSON when it is JSON) when FAILED or CANCELLED.
    error: Any = None
    start_time: str | None = None
    end_time: str | None = None
    saga_id: str | None = None
    # The workflow step running now, (routine, step): the innermost one (Executions API
    # ``status.currentSteps``); None when the API gives none.
    current_step: tuple[str, str] | None = None
    # Every step the API reports as running, outermost first (Google reports only the innermost one
    # while a subworkflow runs).
    current_steps: tuple[tuple[str, str], ...] = ()
    # The execution's argument as the API gave it (JSON text; empty when the view left it out).
    argument_json: str = ""

    @property
    def argument(self) -> Any:
        """The argument (the normalized saga request) parsed, when it is a JSON object; else None."""
        try:
            value = json.loads(self.argument_json) if self.argument_json else None
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


class SagaExecutions(Protocol):
    """The executions of the saga workflow, each labelled ``saga_id=<saga id>``."""

    def find(self, saga_id: str) -> str | None:
        """The name of an execution labelled ``saga_id`` (any state), if there is one."""
        ...

    def create(self, request: SagaRequest) -> StartOutcome:
        """Start an execution without looking first, then settle a race with another start of the
        same saga: at most one execution per saga id stays running."""
        ...


# --- results (Pub/Sub) -------------------------------------------------------------------------------


class Publisher(Protocol):
    def publish(self, message: PubsubMessage) -> str:
        """Publish one message and wait for its id; raises when it could not be published."""
        ...


# --- participant calls -------------------------------------------------------------------------------


class SecretSource(Protocol):
    def get(self, ref: SecretRef) -> str:
        """The secret's value; raises ``SecretAccessError`` (``retryable`` says whether to try again)."""
        ...


class TokenSource(Protocol):
    def id_token(self, audience: str) -> str: ...

    def access_token(self) -> str: ...


FailureKind = Literal["timeout", "connection", "request"]


class HttpCallError(Exception):
    """No HTTP answer. ``kind``: ``timeout`` (connecting or a read took too long), ``connection`` (could
    not connect, TLS refused, or the peer dropped the connection), ``request`` (anything else, e.g. a
    URL the client cannot use)."""

    def __init__(self, kind: FailureKind, message: str) -> None:
        super().__init__(message)
        self.kind: FailureKind = kind
        self.message = message


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: bytes
    content_type: str = ""
    # The body was longer than ``max_body``: ``body`` holds its first ``max_body + 1`` bytes.
    truncated: bool = False


class HttpTransport(Protocol):
    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        connect_timeout: float,
        read_timeout: float,
        max_body: int,
    ) -> HttpAnswer:
        """One request, never retried, never redirected. Raises ``HttpCallError`` when there is no answer."""
        ...
