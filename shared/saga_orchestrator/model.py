"""The saga request as the workflow receives it (the normalized "Workflow argument").

``validation.validate_request`` turns either request form (the seed's flat steps or the richer per-step
form) into a ``SagaRequest``; ``SagaRequest.to_argument()`` is exactly the JSON the Executions API gets,
and ``ActionSpec.to_dict()`` is the ``call`` object the workflow hands to the step executor in each
Cloud Task body, which ``ActionSpec.from_dict`` reads back. Secret headers are *names* of secrets,
never values.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard

from saga_orchestrator.checks import Auth, FieldChecks, json_problems
from saga_orchestrator.errors import InvalidRequestError
from saga_orchestrator.refs import referenced_steps
from saga_orchestrator.settings import DEFAULTS, Settings

Action = Literal["execute", "compensate"]
# What a step does when its execute fails for good: compensate the saga, or park and wait for a decision.
OnFailure = Literal["compensate", "park"]
JSON = Any

ACTIONS: tuple[Action, ...] = ("execute", "compensate")
# Executions API limit on the argument string (bytes of its UTF-8 encoding).
MAX_ARGUMENT_BYTES = 32 * 1024
# A saga id labels its execution, so it has the syntax of a Workflows label value (fullmatch).
SAGA_ID_RE = re.compile(r"[a-z0-9_-]{1,63}")
# The fields of an action in a saga request (attempts under ``retry``) and in a task's ``call`` (the
# shape of ``ActionSpec.to_dict()``).
REQUEST_ACTION_KEYS = frozenset(
    {"url", "method", "payload", "headers", "secret_headers", "auth", "timeout_seconds", "retry"}
)
CALL_KEYS = (REQUEST_ACTION_KEYS - {"retry"}) | {"max_attempts"}


def derive_saga_id(message_id: str) -> str:
    """The saga id of a request without one: stable per Pub/Sub message, so a redelivery dedupes."""
    return "saga-" + hashlib.sha256(message_id.encode("utf-8", "surrogatepass")).hexdigest()[:20]


def is_saga_id(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and SAGA_ID_RE.fullmatch(value) is not None


def new_saga_id() -> str:
    return "saga-" + uuid.uuid4().hex[:20]


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

    def refs(self) -> list[str]:
        """The steps whose outputs this call's payload and headers reference."""
        return referenced_steps([self.payload, self.headers])

    @classmethod
    def from_dict(
        cls,
        call: Any,
        settings: Settings,
        *,
        path: str = "call",
        form: Literal["request", "call"] = "call",
    ) -> ActionSpec:
        """One action on its own: by default the step executor's view of a Cloud Task's ``call`` (the
        shape of ``to_dict``); with ``form="request"`` an action as a request writes it (``TaskManager``).

        It is checked with every rule of the door, the allowlist included, so no task body makes the
        executor call a host it may not. ``$ref`` targets were checked at the door; here any step name is
        accepted. A missing ``max_attempts`` is the execute default. Raises ``InvalidRequestError``
        naming every bad field under ``path``."""
        problems = json_problems(call, path)
        if problems:  # nothing else can be checked safely
            raise InvalidRequestError(problems)
        checks = FieldChecks(settings)
        spec = cls.read(
            checks,
            call,
            path,
            form=form,
            default_attempts=settings.default_execute_max_attempts,
            referable=None,
        )
        checks.raise_if_any()
        assert spec is not None  # read() answers None only after recording why
        return spec

    @classmethod
    def read(
        cls,
        checks: FieldChecks,
        raw: Any,
        path: str,
        *,
        form: Literal["request", "call"],
        default_attempts: int,
        referable: Collection[str] | None,
    ) -> ActionSpec | None:
        """An action in the request form (attempts under ``retry``) or the call form (``max_attempts``),
        its problems added to ``checks``; None when it is not an object or has no URL.

        ``referable``: the steps whose outputs ``$ref``s may name (None: any step)."""
        if not isinstance(raw, dict):
            checks.add(path, "must be an object")
            return None
        checks.unknown_keys(raw, REQUEST_ACTION_KEYS if form == "request" else CALL_KEYS, path)
        url = checks.url(raw.get("url"), f"{path}.url")
        method = checks.method(raw.get("method", "POST"), f"{path}.method")
        payload = raw.get("payload", None if method in ("GET", "DELETE") else {})
        checks.refs(payload, f"{path}.payload", referable)
        headers = checks.headers(raw.get("headers", {}), f"{path}.headers", referable)
        secrets = checks.secret_headers(raw.get("secret_headers", {}), f"{path}.secret_headers", headers)
        auth = checks.auth(raw.get("auth", "oidc"), f"{path}.auth")
        timeout = checks.timeout(
            raw.get("timeout_seconds", checks.settings.default_step_timeout_seconds),
            f"{path}.timeout_seconds",
        )
        if form == "request":
            attempts = checks.retry(raw.get("retry", {}), f"{path}.retry", default_attempts)
        else:
            attempts = checks.attempts(
                raw.get("max_attempts", default_attempts), f"{path}.max_attempts", default_attempts
            )
        if url is None:
            return None
        return cls(
            url=url,
            method=method,
            payload=payload,
            headers=headers,
            secret_headers={name: SecretRef(*ref) for name, ref in secrets.items()},
            auth=auth,
            timeout_seconds=timeout,
            max_attempts=attempts,
        )


@dataclass(frozen=True)
class StepSpec:
    name: str
    execute: ActionSpec
    compensate: ActionSpec | None
    # Bounds of the workflow's callback wait for each action (seconds).
    execute_wait_seconds: int
    compensate_wait_seconds: int
    on_failure: OnFailure = "compensate"
    # How long a parked step waits for an operator's decision (only with on_failure "park").
    park_seconds: int = 0

    def action(self, action: Action) -> ActionSpec | None:
        return self.execute if action == "execute" else self.compensate

    def to_dict(self, max_output_bytes: int) -> dict[str, Any]:
        """The step in the workflow argument. ``execute_refs`` / ``compensate_refs``: the steps whose
        outputs each call references (its task body carries those outputs and no other);
        ``max_output_bytes``: the share of the saga state budget each of its outputs may take."""
        return {
            "name": self.name,
            "execute": self.execute.to_dict(),
            "compensate": self.compensate.to_dict() if self.compensate else None,
            "execute_wait_seconds": self.execute_wait_seconds,
            "compensate_wait_seconds": self.compensate_wait_seconds,
            "execute_refs": self.execute.refs(),
            "compensate_refs": self.compensate.refs() if self.compensate else [],
            "max_output_bytes": max_output_bytes,
            "on_failure": self.on_failure,
            "park_seconds": self.park_seconds,
        }


@dataclass(frozen=True)
class SagaRequest:
    saga_id: str
    steps: tuple[StepSpec, ...]
    deadline_seconds: int
    metadata: dict[str, Any]
    requested_at: str
    event_id: str | None = None
    # Bytes of outputs (compact UTF-8 JSON) the saga may keep: SAGA_STATE_BUDGET_BYTES, set by the starter.
    state_budget_bytes: int = int(DEFAULTS["SAGA_STATE_BUDGET_BYTES"])
    # How long a stuck saga waits for an operator's decision: SAGA_STUCK_DECISION_SECONDS.
    stuck_decision_seconds: int = int(DEFAULTS["SAGA_STUCK_DECISION_SECONDS"])

    def max_output_bytes(self) -> int:
        """The budget split evenly over every output the workflow keeps (one per execute, one per
        compensation), so the workflow never does the arithmetic."""
        kept = len(self.steps) + sum(1 for step in self.steps if step.compensate is not None)
        return self.state_budget_bytes // max(1, kept)

    def to_argument(self) -> dict[str, Any]:
        """The workflow argument, as documented in the README ("Workflow argument")."""
        share = self.max_output_bytes()
        return {
            "saga_id": self.saga_id,
            "steps": [step.to_dict(share) for step in self.steps],
            "deadline_seconds": self.deadline_seconds,
            "stuck_decision_seconds": self.stuck_decision_seconds,
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
