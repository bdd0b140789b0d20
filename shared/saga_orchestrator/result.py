"""The saga result: what the workflow posts to saga_completion and what ``saga-results`` carries.

``parse_result`` checks a completion body and reports every bad field at once; unknown extra fields are
ignored so the workflow may add diagnostics without breaking the contract. ``rejected`` results are
built by ``rejected_result`` (start_saga) and name every problem of the request in ``errors``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from saga_orchestrator.errors import FieldError, InvalidRequestError

SagaStatus = Literal["succeeded", "compensated", "failed", "rejected"]
SAGA_STATUSES: tuple[str, ...] = ("succeeded", "compensated", "failed", "rejected")
STEP_STATUSES: tuple[str, ...] = (
    "succeeded",
    "failed",
    "compensated",
    "compensation_failed",
    "unknown",
    "not_run",
)


@dataclass(frozen=True)
class ActionResult:
    status: str
    # None when the outcome is unknown (the wait for it ended first): attempts may have happened.
    attempts: int | None = 0
    output: Any = None
    error: dict[str, Any] | None = None
    started_at: str | None = None
    finished_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "attempts": self.attempts,
            "output": self.output,
            "error": self.error,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


@dataclass(frozen=True)
class StepResult:
    name: str
    status: str
    execute: ActionResult | None = None
    compensate: ActionResult | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "execute": self.execute.to_dict() if self.execute else None,
            "compensate": self.compensate.to_dict() if self.compensate else None,
        }


@dataclass(frozen=True)
class SagaResult:
    saga_id: str
    status: SagaStatus
    execution: str | None
    failed_step: str | None = None
    reason: str | None = None
    steps: tuple[StepResult, ...] = ()
    started_at: str | None = None
    finished_at: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # Only for ``rejected``: every problem of the request.
    errors: tuple[FieldError, ...] = ()
    # The Pub/Sub message id of the request, when known.
    event_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "saga_id": self.saga_id,
            "status": self.status,
            "execution": self.execution,
            "failed_step": self.failed_step,
            "reason": self.reason,
            "steps": [step.to_dict() for step in self.steps],
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "metadata": self.metadata,
        }
        if self.status == "rejected":
            data["errors"] = [error.to_dict() for error in self.errors]
        if self.event_id is not None:
            data["event_id"] = self.event_id
        return data


def rejected_result(
    saga_id: str,
    errors: list[FieldError],
    *,
    finished_at: str,
    event_id: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> SagaResult:
    count = len(errors)
    return SagaResult(
        saga_id=saga_id,
        status="rejected",
        execution=None,
        reason=f"the saga request is invalid ({count} problem{'s' if count != 1 else ''})",
        finished_at=finished_at,
        metadata=metadata or {},
        errors=tuple(errors),
        event_id=event_id,
    )


def _opt_str(data: dict[str, Any], key: str, path: str, errors: list[FieldError]) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        errors.append(FieldError(f"{path}{key}", "must be a string or null"))
        return None
    return value


def _action(raw: Any, path: str, errors: list[FieldError]) -> ActionResult | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        errors.append(FieldError(path, "must be an object or null"))
        return None
    status = raw.get("status")
    if not isinstance(status, str) or not status:
        errors.append(FieldError(f"{path}.status", "is required and must be a string"))
        status = ""
    attempts = raw.get("attempts", 0)
    if attempts is not None and (not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 0):
        errors.append(FieldError(f"{path}.attempts", "must be a non-negative integer or null (unknown)"))
        attempts = 0
    error = raw.get("error")
    if error is not None and not isinstance(error, dict):
        errors.append(FieldError(f"{path}.error", "must be an object or null"))
        error = None
    return ActionResult(
        status=status,
        attempts=attempts,
        output=raw.get("output"),
        error=error,
        started_at=_opt_str(raw, "started_at", f"{path}.", errors),
        finished_at=_opt_str(raw, "finished_at", f"{path}.", errors),
    )


def parse_result(data: Any) -> SagaResult:
    """A completion body (or the data of a result event) → ``SagaResult``; raises ``InvalidRequestError``."""
    if not isinstance(data, dict):
        raise InvalidRequestError([FieldError("", "the result must be a JSON object")])
    errors: list[FieldError] = []
    saga_id = data.get("saga_id")
    if not isinstance(saga_id, str) or not saga_id:
        errors.append(FieldError("saga_id", "is required and must be a string"))
    status = data.get("status")
    if status not in SAGA_STATUSES:
        errors.append(FieldError("status", f"must be one of {', '.join(SAGA_STATUSES)}"))
    execution = data.get("execution")
    if status != "rejected" and (not isinstance(execution, str) or "/executions/" not in execution):
        errors.append(FieldError("execution", "is required: projects/P/locations/L/workflows/W/executions/E"))
    metadata = data.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        errors.append(FieldError("metadata", "must be an object"))
        metadata = {}
    steps: list[StepResult] = []
    raw_steps = data.get("steps", [])
    if not isinstance(raw_steps, list):
        errors.append(FieldError("steps", "must be a list"))
        raw_steps = []
    for index, raw in enumerate(raw_steps):
        path = f"steps[{index}]"
        if not isinstance(raw, dict):
            errors.append(FieldError(path, "must be an object"))
            continue
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            errors.append(FieldError(f"{path}.name", "is required and must be a string"))
        step_status = raw.get("status")
        if step_status not in STEP_STATUSES:
            errors.append(FieldError(f"{path}.status", f"must be one of {', '.join(STEP_STATUSES)}"))
        steps.append(
            StepResult(
                name=str(name),
                status=str(step_status),
                execute=_action(raw.get("execute"), f"{path}.execute", errors),
                compensate=_action(raw.get("compensate"), f"{path}.compensate", errors),
            )
        )
    raw_errors = data.get("errors", [])
    field_errors: list[FieldError] = []
    if isinstance(raw_errors, list):
        for item in raw_errors:
            if isinstance(item, dict) and isinstance(item.get("message"), str):
                field_errors.append(FieldError(str(item.get("field", "")), item["message"]))
            else:
                errors.append(FieldError("errors", "each entry must be {field, message}"))
                break
    else:
        errors.append(FieldError("errors", "must be a list"))
    failed_step = _opt_str(data, "failed_step", "", errors)
    reason = _opt_str(data, "reason", "", errors)
    started_at = _opt_str(data, "started_at", "", errors)
    finished_at = _opt_str(data, "finished_at", "", errors)
    event_id = _opt_str(data, "event_id", "", errors)
    if errors:
        raise InvalidRequestError(errors)
    return SagaResult(
        saga_id=str(saga_id),
        status=status,  # type: ignore[arg-type]
        execution=execution if isinstance(execution, str) else None,
        failed_step=failed_step,
        reason=reason,
        steps=tuple(steps),
        started_at=started_at,
        finished_at=finished_at,
        metadata=metadata,
        errors=tuple(field_errors),
        event_id=event_id,
    )
