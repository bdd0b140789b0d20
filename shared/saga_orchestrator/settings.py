"""Deployment settings of the three functions, read once from an environment mapping.

Pure: ``Settings.from_env(env)`` reads only the mapping it is given (the functions pass ``os.environ``).
Defaults are the values of ``deployment.env`` at the repository root, so a test or a tool that passes
``{}`` gets the same behaviour as a default deployment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from saga_orchestrator.errors import FieldError, InvalidRequestError

DEFAULTS: dict[str, str] = {
    "SAGA_PROJECT_ID": "local-project",
    "SAGA_LOCATION": "us-central1",
    "SAGA_REQUEST_TOPIC": "saga-requests",
    "SAGA_RESULT_TOPIC": "saga-results",
    "SAGA_TASK_QUEUE": "saga-tasks",
    "SAGA_WORKFLOW": "saga-orchestrator",
    "SAGA_QUEUE_MAX_ATTEMPTS": "20",
    "SAGA_QUEUE_MIN_BACKOFF_SECONDS": "0.5",
    "SAGA_QUEUE_MAX_BACKOFF_SECONDS": "30",
    "SAGA_QUEUE_MAX_DOUBLINGS": "5",
    "SAGA_DISPATCH_DEADLINE_SECONDS": "120",
    "SAGA_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "SAGA_MAX_STEPS": "20",
    "SAGA_DEFAULT_DEADLINE_SECONDS": "86400",
    "SAGA_DEFAULT_STEP_TIMEOUT_SECONDS": "30",
    "SAGA_DEFAULT_EXECUTE_MAX_ATTEMPTS": "5",
    "SAGA_DEFAULT_COMPENSATE_MAX_ATTEMPTS": "10",
    "SAGA_SECRET_CACHE_SECONDS": "60",
    "SAGA_STATE_BUDGET_BYTES": "196608",
    "SAGA_STUCK_DECISION_SECONDS": "604800",
    "SAGA_PARK_SECONDS": "86400",
    "SAGA_DIRECT_RUN_SECONDS": "10",
    "SAGA_START_TAKEOVER_SECONDS": "600",
    # Empty: ``<SAGA_PROJECT_ID>-saga-starts`` (see ``Settings.start_bucket``).
    "SAGA_START_BUCKET": "",
}
# Workflows keeps a saga's variables within 512 KB; the outputs are held once in the state and once more
# in the result the workflow returns, so the budget may not exceed half of it.
MAX_STATE_BUDGET_BYTES = 256 * 1024
# An execution runs at most a year (https://cloud.google.com/workflows/quotas), so does a decision wait.
MAX_DECISION_SECONDS = 365 * 24 * 3600


@dataclass(frozen=True)
class Settings:
    project_id: str
    location: str
    request_topic: str
    result_topic: str
    task_queue: str
    workflow: str
    queue_max_attempts: int
    queue_min_backoff_seconds: float
    queue_max_backoff_seconds: float
    queue_max_doublings: int
    dispatch_deadline_seconds: float
    allowed_hosts: tuple[str, ...]
    max_steps: int
    default_deadline_seconds: int
    default_step_timeout_seconds: float
    default_execute_max_attempts: int
    default_compensate_max_attempts: int
    secret_cache_seconds: float
    # Bytes (compact UTF-8 JSON) of step outputs one saga may keep; split per output by the starter.
    state_budget_bytes: int = int(DEFAULTS["SAGA_STATE_BUDGET_BYTES"])
    # How long a saga whose compensation failed for good waits for an operator's decision (0: not at all).
    stuck_decision_seconds: int = int(DEFAULTS["SAGA_STUCK_DECISION_SECONDS"])
    # How long a parked step waits for a decision when its request does not say (``park_seconds``).
    park_seconds: int = int(DEFAULTS["SAGA_PARK_SECONDS"])
    # A forward run (saga_orchestrator.forward) starts no step after this many seconds; 0: no forward run.
    direct_run_seconds: float = float(DEFAULTS["SAGA_DIRECT_RUN_SECONDS"])
    # How long a start claim whose winner recorded no execution holds its saga id (saga_orchestrator.starts).
    start_takeover_seconds: float = float(DEFAULTS["SAGA_START_TAKEOVER_SECONDS"])
    # ``host:port`` of the metadata server as google-auth sees it (GCE_METADATA_HOST); always refused.
    metadata_host: str | None = None
    # The Cloud Storage bucket of start claims (``saga_orchestrator.starts``); empty: the default name.
    start_bucket_name: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Raises ``InvalidRequestError`` naming every malformed variable."""
        errors: list[FieldError] = []

        def text(name: str) -> str:
            value = env.get(name, "").strip()
            return value or DEFAULTS[name]

        def number(name: str, kind: type[int] | type[float], minimum: float) -> float:
            raw = text(name)
            try:
                value = kind(raw)
            except ValueError:
                errors.append(
                    FieldError(name, f"must be {'an integer' if kind is int else 'a number'}, got {raw!r}")
                )
                return kind(DEFAULTS[name])
            if value < minimum:
                errors.append(FieldError(name, f"must be at least {minimum:g}, got {raw}"))
            return value

        hosts = tuple(h.strip().lower() for h in text("SAGA_ALLOWED_HOSTS").split(",") if h.strip())
        settings = cls(
            project_id=text("SAGA_PROJECT_ID"),
            location=text("SAGA_LOCATION"),
            request_topic=text("SAGA_REQUEST_TOPIC"),
            result_topic=text("SAGA_RESULT_TOPIC"),
            task_queue=text("SAGA_TASK_QUEUE"),
            workflow=text("SAGA_WORKFLOW"),
            queue_max_attempts=int(number("SAGA_QUEUE_MAX_ATTEMPTS", int, 1)),
            queue_min_backoff_seconds=number("SAGA_QUEUE_MIN_BACKOFF_SECONDS", float, 0),
            queue_max_backoff_seconds=number("SAGA_QUEUE_MAX_BACKOFF_SECONDS", float, 0),
            queue_max_doublings=int(number("SAGA_QUEUE_MAX_DOUBLINGS", int, 0)),
            dispatch_deadline_seconds=number("SAGA_DISPATCH_DEADLINE_SECONDS", float, 15),
            allowed_hosts=hosts,
            max_steps=int(number("SAGA_MAX_STEPS", int, 1)),
            default_deadline_seconds=int(number("SAGA_DEFAULT_DEADLINE_SECONDS", int, 1)),
            default_step_timeout_seconds=number("SAGA_DEFAULT_STEP_TIMEOUT_SECONDS", float, 1),
            default_execute_max_attempts=int(number("SAGA_DEFAULT_EXECUTE_MAX_ATTEMPTS", int, 1)),
            default_compensate_max_attempts=int(number("SAGA_DEFAULT_COMPENSATE_MAX_ATTEMPTS", int, 1)),
            secret_cache_seconds=number("SAGA_SECRET_CACHE_SECONDS", float, 0),
            state_budget_bytes=int(number("SAGA_STATE_BUDGET_BYTES", int, 1024)),
            stuck_decision_seconds=int(number("SAGA_STUCK_DECISION_SECONDS", int, 0)),
            park_seconds=int(number("SAGA_PARK_SECONDS", int, 1)),
            direct_run_seconds=number("SAGA_DIRECT_RUN_SECONDS", float, 0),
            start_takeover_seconds=number("SAGA_START_TAKEOVER_SECONDS", float, 1),
            metadata_host=(env.get("GCE_METADATA_HOST") or "").strip().lower() or None,
            start_bucket_name=text("SAGA_START_BUCKET"),
        )
        errors.extend(settings._limit_errors())
        if errors:
            raise InvalidRequestError(errors)
        return settings

    def _limit_errors(self) -> list[FieldError]:
        """Values that are well formed alone but break a limit of Cloud Tasks or another setting."""
        errors: list[FieldError] = []
        if self.queue_max_backoff_seconds < self.queue_min_backoff_seconds:
            errors.append(
                FieldError(
                    "SAGA_QUEUE_MAX_BACKOFF_SECONDS", "must not be less than SAGA_QUEUE_MIN_BACKOFF_SECONDS"
                )
            )
        if self.dispatch_deadline_seconds > 1800:
            errors.append(
                FieldError("SAGA_DISPATCH_DEADLINE_SECONDS", "must be at most 1800 (Cloud Tasks limit)")
            )
        if self.state_budget_bytes > MAX_STATE_BUDGET_BYTES:
            errors.append(
                FieldError(
                    "SAGA_STATE_BUDGET_BYTES",
                    f"must be at most {MAX_STATE_BUDGET_BYTES} (half the Workflows memory limit of 512 KB)",
                )
            )
        for name, value in (
            ("SAGA_STUCK_DECISION_SECONDS", self.stuck_decision_seconds),
            ("SAGA_PARK_SECONDS", self.park_seconds),
        ):
            if value > MAX_DECISION_SECONDS:
                errors.append(
                    FieldError(name, f"must be at most {MAX_DECISION_SECONDS} (a year, the Workflows limit)")
                )
        for name, value in (
            ("SAGA_DEFAULT_EXECUTE_MAX_ATTEMPTS", self.default_execute_max_attempts),
            ("SAGA_DEFAULT_COMPENSATE_MAX_ATTEMPTS", self.default_compensate_max_attempts),
        ):
            if value > self.queue_max_attempts:
                errors.append(FieldError(name, "must not exceed SAGA_QUEUE_MAX_ATTEMPTS"))
        return errors

    @property
    def workflow_path(self) -> str:
        return f"projects/{self.project_id}/locations/{self.location}/workflows/{self.workflow}"

    @property
    def start_bucket(self) -> str:
        """Where start_saga and ``execute_saga`` claim saga ids: ``SAGA_START_BUCKET``, or
        ``<project id>-saga-starts`` (bucket names are global, so the default carries the project)."""
        return self.start_bucket_name or default_start_bucket(self.project_id)

    @property
    def result_topic_path(self) -> str:
        return f"projects/{self.project_id}/topics/{self.result_topic}"

    @property
    def queue_path(self) -> str:
        return f"projects/{self.project_id}/locations/{self.location}/queues/{self.task_queue}"

    def retry_delay_seconds(self, retry: int) -> float:
        """Cloud Tasks' delay before retry number ``retry`` (1 = the first retry) under the queue's config.

        The documented schedule: start at min_backoff, double max_doublings times, then grow linearly by
        2**max_doublings * min_backoff per retry; never above max_backoff.
        """
        if retry < 1:
            return 0.0
        doublings = self.queue_max_doublings
        if retry - 1 <= doublings:
            delay = self.queue_min_backoff_seconds * 2 ** (retry - 1)
        else:
            delay = self.queue_min_backoff_seconds * 2**doublings * (retry - doublings)
        return float(min(delay, self.queue_max_backoff_seconds))


def default_start_bucket(project_id: str) -> str:
    """The start-claims bucket of a project when ``SAGA_START_BUCKET`` is empty."""
    return f"{project_id}-saga-starts"
