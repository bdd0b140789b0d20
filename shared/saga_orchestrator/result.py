"""The saga result: what the workflow posts to saga_completion and what ``saga-results`` carries
(``schemas/saga-result.v2.schema.json``; v2 adds ``cause``, ``error``, ``uncompensated_steps`` and ``audit``
to v1, which stays valid for every v2 result).

``parse_result`` checks a completion body and reports every bad field at once; unknown extra fields are
ignored so the workflow may add diagnostics without breaking the contract. ``rejected`` results are
built by ``rejected_result`` (start_saga) and name every problem of the request in ``errors``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from saga_orchestrator.errors import FieldError, InvalidRequestError

# How a saga ended (``SagaStatus`` is the seed API's view of an execution, ``ports.SagaStatus``).
SagaOutcome = Literal["succeeded", "compensated", "failed", "rejected"]
SAGA_STATUSES: tuple[str, ...] = ("succeeded", "compensated", "failed", "rejected")
STEP_STATUSES: tuple[str, ...] = (
    "succeeded",
    "failed",
    "compensated",
    "compensation_failed",
    "unknown",
    "not_run",
)
# Why forward progress stopped (None when the saga succeeded or was rejected). ``terminated``: the
# execution ended without a result of its own (it is never set by the workflow).
SAGA_CAUSES: tuple[str, ...] = ("step_failed", "deadline", "cancelled", "terminated", "engine_error")


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
class AuditEntry:
    """An operator action the saga received, e.g. a cancel (``step`` None: it concerns the saga)."""

    verb: str
    step: str | None = None
    reason: str | None = None
    by: str | None = None
    at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"verb": self.verb, "step": self.step, "reason": self.reason, "by": self.by, "at": self.at}


@dataclass(frozen=True)
class SagaResult:
    saga_id: str
    status: SagaOutcome
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
    cause: str | None = None
    # The first engine error ({message, tags, code}) when cause is engine_error, else usually None.
    error: dict[str, Any] | None = None
    # Every step whose undo did not happen (non-empty exactly when status is failed).
    uncompensated_steps: tuple[str, ...] = ()
    audit: tuple[AuditEntry, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "saga_id": self.saga_id,
            "status": self.status,
            "cause": self.cause,
            "error": self.error,
            "execution": self.execution,
            "failed_step": self.failed_step,
            "reason": self.reason,
            "uncompensated_steps": list(self.uncompensated_steps),
            "audit": [entry.to_dict() for entry in self.audit],
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


NOTICES: tuple[str, ...] = ("stuck", "parked")
# The action a saga waits on when it is stuck (an undo) or parked (an execute).
NOTICE_ACTIONS: dict[str, str] = {"stuck": "compensate", "parked": "execute"}
OPERATOR_VERBS: tuple[str, ...] = ("cancel", "retry", "skip", "compensate")


@dataclass(frozen=True)
class Notice:
    """A saga waiting for an operator's decision: ``stuck`` (the compensation of ``step`` failed for
    good) or ``parked`` (its execute failed for good). ``verbs``: what applies; ``until``: when the wait
    ends without a decision; ``sequence``: the notice's number within the saga (1, 2, ...)."""

    notice: str
    saga_id: str
    execution: str
    step: str
    action: str
    error: dict[str, Any] | None
    verbs: tuple[str, ...]
    until: str | None
    sequence: int
    at: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "notice": self.notice,
            "saga_id": self.saga_id,
            "execution": self.execution,
            "step": self.step,
            "action": self.action,
            "error": self.error,
            "verbs": list(self.verbs),
            "until": self.until,
            "sequence": self.sequence,
            "at": self.at,
            "metadata": self.metadata,
        }


def parse_notice(data: Any) -> Notice:
    """A notice the workflow posts to saga_completion; raises ``InvalidRequestError`` naming every bad
    field."""
    if not isinstance(data, dict):
        raise InvalidRequestError([FieldError("", "a notice must be a JSON object")])
    errors: list[FieldError] = []
    if data.get("notice") not in NOTICES:
        errors.append(FieldError("notice", f"must be one of {', '.join(NOTICES)}"))
    texts = {key: _required_str(data, key, "", errors) for key in ("saga_id", "execution", "step", "action")}
    if texts["execution"] and "/executions/" not in texts["execution"]:
        errors.append(FieldError("execution", "must be projects/P/locations/L/workflows/W/executions/E"))
    awaited = NOTICE_ACTIONS.get(str(data.get("notice")))
    if awaited and texts["action"] and texts["action"] != awaited:
        errors.append(FieldError("action", f"must be {awaited} for a {data['notice']} notice"))
    verbs = data.get("verbs")
    if not isinstance(verbs, list) or not all(v in OPERATOR_VERBS for v in verbs):
        errors.append(FieldError("verbs", f"must be a list of {', '.join(OPERATOR_VERBS)}"))
        verbs = []
    sequence = data.get("sequence")
    if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 1:
        errors.append(FieldError("sequence", "must be a positive integer"))
        sequence = 1
    error = data.get("error")
    if error is not None and not isinstance(error, dict):
        errors.append(FieldError("error", "must be an object or null"))
    until = _opt_str(data, "until", "", errors)
    at = _opt_str(data, "at", "", errors)
    metadata = _metadata(data.get("metadata"), errors)
    if errors:
        raise InvalidRequestError(errors)
    return Notice(
        notice=str(data["notice"]),
        verbs=tuple(verbs),
        error=error,
        until=until,
        sequence=sequence,
        at=at,
        metadata=metadata,
        **texts,
    )


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


def _required_str(data: dict[str, Any], key: str, path: str, errors: list[FieldError]) -> str:
    value = data.get(key)
    if isinstance(value, str) and value:
        return value
    errors.append(FieldError(f"{path}{key}", "is required and must be a string"))
    return ""


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
    status = _required_str(raw, "status", f"{path}.", errors)
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


def merge_outputs(data: Any) -> Any:
    """A completion body → the same body with each step's output back in its ``execute`` record.

    The workflow keeps a succeeded step's output once, in ``outputs`` (step name → output), and sends
    that map beside ``steps``; an ``execute`` record without an ``output`` gets its step's. Anything
    else (no ``outputs``, a malformed one) is left for ``parse_result`` to judge; ``outputs`` is dropped.
    """
    if not isinstance(data, dict) or "outputs" not in data:
        return data
    merged = {key: value for key, value in data.items() if key != "outputs"}
    outputs, steps = data["outputs"], data.get("steps")
    if not isinstance(outputs, dict) or not isinstance(steps, list):
        return merged
    merged["steps"] = [_with_output(step, outputs) for step in steps]
    return merged


def _with_output(step: Any, outputs: dict[str, Any]) -> Any:
    if not isinstance(step, dict) or not isinstance(step.get("execute"), dict):
        return step
    name = step.get("name")
    if "output" in step["execute"] or not isinstance(name, str):
        return step
    return {**step, "execute": {**step["execute"], "output": outputs.get(name)}}


def parse_result(data: Any) -> SagaResult:
    """A completion body (or the data of a result event) → ``SagaResult``; raises ``InvalidRequestError``."""
    if not isinstance(data, dict):
        raise InvalidRequestError([FieldError("", "the result must be a JSON object")])
    errors: list[FieldError] = []
    saga_id, status, execution = _identity(data, errors)
    metadata = _metadata(data.get("metadata", {}), errors)
    steps = _steps(data.get("steps", []), errors)
    field_errors = _field_errors(data.get("errors", []), errors)
    failed_step = _opt_str(data, "failed_step", "", errors)
    reason = _opt_str(data, "reason", "", errors)
    started_at = _opt_str(data, "started_at", "", errors)
    finished_at = _opt_str(data, "finished_at", "", errors)
    event_id = _opt_str(data, "event_id", "", errors)
    outcome = _outcome(data, status, errors)
    if errors:
        raise InvalidRequestError(errors)
    return SagaResult(
        saga_id=saga_id,
        status=status,
        execution=execution,
        failed_step=failed_step,
        reason=reason,
        steps=tuple(steps),
        started_at=started_at,
        finished_at=finished_at,
        metadata=metadata,
        errors=tuple(field_errors),
        event_id=event_id,
        **outcome,
    )


def _outcome(data: dict[str, Any], status: Any, errors: list[FieldError]) -> dict[str, Any]:
    """``cause``, ``error``, ``uncompensated_steps`` and ``audit`` (v2; all optional for v1 bodies)."""
    cause = data.get("cause")
    if cause is not None and cause not in SAGA_CAUSES:
        errors.append(FieldError("cause", f"must be null or one of {', '.join(SAGA_CAUSES)}"))
    error = data.get("error")
    if error is not None and not isinstance(error, dict):
        errors.append(FieldError("error", "must be an object {message, tags, code} or null"))
        error = None
    undone = data.get("uncompensated_steps") or []
    if not isinstance(undone, list) or not all(isinstance(name, str) for name in undone):
        errors.append(FieldError("uncompensated_steps", "must be a list of step names"))
        undone = []
    if undone and status != "failed":
        errors.append(FieldError("uncompensated_steps", "steps left undone make the saga failed"))
    return {
        "cause": cause if isinstance(cause, str) else None,
        "error": error,
        "uncompensated_steps": tuple(undone),
        "audit": tuple(_audit(data.get("audit") or [], errors)),
    }


def _audit(raw: Any, errors: list[FieldError]) -> list[AuditEntry]:
    if not isinstance(raw, list):
        errors.append(FieldError("audit", "must be a list"))
        return []
    entries = []
    for index, item in enumerate(raw):
        path = f"audit[{index}]"
        if not isinstance(item, dict):
            errors.append(FieldError(path, "must be an object {verb, step, reason, by, at}"))
            continue
        verb = _required_str(item, "verb", f"{path}.", errors)
        step = _opt_str(item, "step", f"{path}.", errors)
        reason = _opt_str(item, "reason", f"{path}.", errors)
        by = _opt_str(item, "by", f"{path}.", errors)
        at = _opt_str(item, "at", f"{path}.", errors)
        entries.append(AuditEntry(verb=verb, step=step, reason=reason, by=by, at=at))
    return entries


def _identity(data: dict[str, Any], errors: list[FieldError]) -> tuple[str, SagaOutcome, str | None]:
    """Saga id, outcome and execution name (every outcome but ``rejected`` comes from an execution)."""
    saga_id = _required_str(data, "saga_id", "", errors)
    status: Any = data.get("status")  # an outcome once it passes this check; else never used
    if status not in SAGA_STATUSES:
        errors.append(FieldError("status", f"must be one of {', '.join(SAGA_STATUSES)}"))
    execution = data.get("execution")
    if status != "rejected" and (not isinstance(execution, str) or "/executions/" not in execution):
        errors.append(FieldError("execution", "is required: projects/P/locations/L/workflows/W/executions/E"))
    return saga_id, status, execution if isinstance(execution, str) else None


def _metadata(metadata: Any, errors: list[FieldError]) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        errors.append(FieldError("metadata", "must be an object"))
        return {}
    return metadata


def _steps(raw_steps: Any, errors: list[FieldError]) -> list[StepResult]:
    if not isinstance(raw_steps, list):
        errors.append(FieldError("steps", "must be a list"))
        return []
    steps = (_step(raw, f"steps[{index}]", errors) for index, raw in enumerate(raw_steps))
    return [step for step in steps if step is not None]


def _step(raw: Any, path: str, errors: list[FieldError]) -> StepResult | None:
    if not isinstance(raw, dict):
        errors.append(FieldError(path, "must be an object"))
        return None
    name = _required_str(raw, "name", f"{path}.", errors)
    status = raw.get("status")
    if status not in STEP_STATUSES:
        errors.append(FieldError(f"{path}.status", f"must be one of {', '.join(STEP_STATUSES)}"))
    return StepResult(
        name=name,
        status=str(status),
        execute=_action(raw.get("execute"), f"{path}.execute", errors),
        compensate=_action(raw.get("compensate"), f"{path}.compensate", errors),
    )


def _field_errors(raw_errors: Any, errors: list[FieldError]) -> list[FieldError]:
    """The ``errors`` of a ``rejected`` result: ``[{field, message}]``."""
    if not isinstance(raw_errors, list):
        errors.append(FieldError("errors", "must be a list"))
        return []
    found: list[FieldError] = []
    for item in raw_errors:
        if not isinstance(item, dict) or not isinstance(item.get("message"), str):
            errors.append(FieldError("errors", "each entry must be {field, message}"))
            break
        found.append(FieldError(str(item.get("field", "")), item["message"]))
    return found
