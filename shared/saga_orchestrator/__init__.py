"""Saga orchestration on Google Cloud: request/result model and validation, the seed's Python API
(``saga_orchestrator.workflows.saga_orchestrator.SagaOrchestrator``,
``saga_orchestrator.tasks.task_manager.TaskManager``), participant calls, secrets, CloudEvent encoding,
structured logging and the one GCP client factory."""

from __future__ import annotations

from saga_orchestrator.errors import (
    CallbackDeliveryError,
    FieldError,
    InvalidRequestError,
    ReferenceResolutionError,
    SagaError,
    SecretAccessError,
    TaskAlreadyExistsError,
)

__version__ = "0.1.0"

__all__ = [
    "CallbackDeliveryError",
    "FieldError",
    "InvalidRequestError",
    "ReferenceResolutionError",
    "SagaError",
    "SecretAccessError",
    "TaskAlreadyExistsError",
    "__version__",
]
