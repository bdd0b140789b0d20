"""The saga request as the workflow receives it (the normalized "Workflow argument").

``validation.validate_request`` turns either request form (the seed's flat steps or the richer per-step
form) into a ``SagaRequest``; ``SagaRequest.to_argument()`` is exactly the JSON the Executions API gets,
and ``ActionSpec.to_dict()`` is the ``call`` object the workflow hands to the step executor in each
Cloud Task body. Secret headers are *names* of secrets, never values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

Action = Literal["execute", "compensate"]
Auth = Literal["oidc", "none"]
JSON = Any

ACTIONS: tuple[Action, ...] = ("execute", "compensate")
METHODS: tuple[str, ...] = ("POST", "PUT", "PATCH", "DELETE", "GET")
# Executions API limit on the argument string (bytes of its UTF-8 encoding).
MAX_ARGUMENT_BYTES = 32 * 1024


@dataclass(frozen=True)
class SecretRef:
    """A Secret Manager secret version: ``projects/<project>/secrets/<secret>/versions/<version>``."""

    secret: str
    version: str = "latest"

    def to_dict(self) -> dict[str, str]:
        return {"secret": self.secret, "version": self.version}

    def resource_name(self, project_id: str) -> str:
        return f"projects/{project_id}/secrets/{self.secret}/versions/{self.version}"


@dataclass(frozen=True)
class ActionSpec:
    """One participant call (execute or compensate) with its retry budget.

    ``max_attempts`` counts the first attempt; the step executor stops at exactly that many.
    ``timeout_seconds`` bounds one HTTP call to the participant.
    """

    url: str
    method: str = "POST"
    payload: JSON = None
    headers: dict[str, Any] = field(default_factory=dict)
    secret_headers: dict[str, SecretRef] = field(default_factory=dict)
    auth: Auth = "oidc"
    timeout_seconds: float = 30
    max_attempts: int = 5

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "method": self.method,
            "payload": self.payload,
            "headers": dict(self.headers),
            "secret_headers": {name: ref.to_dict() for name, ref in self.secret_headers.items()},
            "auth": self.auth,
            "timeout_seconds": _number(self.timeout_seconds),
            "max_attempts": self.max_attempts,
        }


@dataclass(frozen=True)
class StepSpec:
    name: str
    execute: ActionSpec
    compensate: ActionSpec | None
    # Bounds of the workflow's callback wait for each action (seconds).
    execute_wait_seconds: int
    compensate_wait_seconds: int

    def action(self, action: Action) -> ActionSpec | None:
        return self.execute if action == "execute" else self.compensate

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "execute": self.execute.to_dict(),
            "compensate": self.compensate.to_dict() if self.compensate else None,
            "execute_wait_seconds": self.execute_wait_seconds,
            "compensate_wait_seconds": self.compensate_wait_seconds,
        }


@dataclass(frozen=True)
class SagaRequest:
    saga_id: str
    steps: tuple[StepSpec, ...]
    deadline_seconds: int
    metadata: dict[str, Any]
    requested_at: str
    event_id: str | None = None

    def to_argument(self) -> dict[str, Any]:
        """The workflow argument, as documented in the README ("Workflow argument")."""
        return {
            "saga_id": self.saga_id,
            "steps": [step.to_dict() for step in self.steps],
            "deadline_seconds": self.deadline_seconds,
            "metadata": self.metadata,
            "requested_at": self.requested_at,
            "event_id": self.event_id,
        }

    def argument_json(self) -> str:
        return argument_json(self.to_argument())


def argument_json(argument: dict[str, Any]) -> str:
    """The exact string sent as the Executions API ``argument`` (compact, UTF-8 kept as is)."""
    return json.dumps(argument, separators=(",", ":"), ensure_ascii=False)


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value
