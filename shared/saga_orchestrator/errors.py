"""The library's errors. Each carries its data as attributes; retryability is data, not a class name."""

from __future__ import annotations

from dataclasses import dataclass


class SagaError(Exception):
    """Base class of every error this library raises on purpose."""


@dataclass(frozen=True)
class FieldError:
    """One problem with one field. ``field`` is a path such as ``steps[1].execute.url`` ("" = the whole)."""

    field: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class InvalidRequestError(SagaError, ValueError):
    """A request (or result) that can never succeed as sent. ``errors`` lists every bad field at once."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(f"{e.field or '<request>'}: {e.message}" for e in self.errors))


class ReferenceResolutionError(SagaError, ValueError):
    """A ``{"$ref": "steps.<name>.output.<path>"}`` that names nothing in the outputs available."""

    def __init__(self, ref: str, message: str) -> None:
        self.ref = ref
        super().__init__(f"$ref {ref!r}: {message}")


class SecretAccessError(SagaError):
    """A secret could not be read. ``retryable`` says whether trying again later may help."""

    def __init__(self, name: str, message: str, *, retryable: bool) -> None:
        self.name = name
        self.retryable = retryable
        super().__init__(f"secret {name!r}: {message}")


class TaskAlreadyExistsError(SagaError):
    """A named Cloud Task was created before (or recently executed): the request is a duplicate."""

    def __init__(self, task_name: str) -> None:
        self.task_name = task_name
        super().__init__(f"task {task_name} already exists (or ran recently); named tasks are deduplicated")


class CallbackDeliveryError(SagaError):
    """The step outcome could not be reported to the workflow's callback URL."""

    def __init__(self, url: str, message: str, status_code: int | None = None) -> None:
        self.url = url
        self.status_code = status_code
        super().__init__(f"callback {url}: {message}")


class SagaNotFoundError(SagaError, LookupError):
    """No execution of the saga workflow has this saga id (label ``saga_id``) or this execution name."""

    def __init__(self, saga: str) -> None:
        self.saga = saga
        super().__init__(f"saga {saga!r}: no execution of the saga workflow has this saga id or name")


class SagaNotRunningError(SagaError):
    """The saga's execution has ended (``state``: SUCCEEDED, FAILED or CANCELLED): nothing to stop."""

    def __init__(self, saga: str, execution: str, state: str) -> None:
        self.saga = saga
        self.execution = execution
        self.state = state
        super().__init__(f"saga {saga!r} is not running: its execution {execution} ended {state}")


class VerbNotApplicableError(SagaError):
    """An operator's verb that does not apply to the saga as it is now (``why`` says what it is doing)."""

    def __init__(self, saga: str, verb: str, why: str) -> None:
        self.saga = saga
        self.verb = verb
        self.why = why
        super().__init__(f"{verb} does not apply to saga {saga!r}: {why}")


class CancelDeliveryError(SagaError):
    """An operator's message (a cancel or another verb) could not be handed to the saga's execution (its callback endpoint)."""

    def __init__(self, execution: str, message: str, status_code: int | None = None) -> None:
        self.execution = execution
        self.status_code = status_code
        super().__init__(f"cancel of {execution}: {message}")
