"""Durable retried HTTP calls through Cloud Tasks (the seed's Python API).

Cloud Tasks retry settings (max attempts, backoff) belong to the *queue*, not to a task. So that
``max_attempts`` holds exactly for each task anyway, ``create_retry_task`` does not target ``url``
directly: it creates a task for the step executor (``executor_url``) whose body is an envelope naming
the call and its ``max_attempts``. The executor numbers attempts from ``X-CloudTasks-TaskExecutionCount``
(dispatches that called ``url``; not those the platform refused with a 5xx before the executor ran),
answers 424 (Cloud Tasks retries with the queue's backoff) on a transient failure while attempts remain,
and 200 at the last allowed attempt whatever happened, which ends the task (``executor`` docstring: what
holds exactly on Google Cloud). The queue's own max attempts counts every dispatch, refusals included, so
it must be above the largest ``max_attempts`` used (SAGA_QUEUE_MAX_ATTEMPTS), with room for refusals.

The participant sees the same ``Idempotency-Key`` on every attempt of one task (``tasks:<task id>:execute``);
a task without ``task_id`` gets a random id, so only named tasks are deduplicated by Cloud Tasks.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import uuid
from typing import TYPE_CHECKING, Any

from saga_orchestrator.clients import ClientFactory, default_factory
from saga_orchestrator.cloudtasks import HttpTask, TaskQueue
from saga_orchestrator.errors import SagaError
from saga_orchestrator.model import ActionSpec
from saga_orchestrator.settings import Settings

if TYPE_CHECKING:
    from google.cloud.tasks_v2 import Task

TASK_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
MAX_SCHEDULE_SECONDS = 30 * 24 * 3600


class TaskManager:
    def __init__(
        self,
        project_id: str,
        location_id: str,
        queue_id: str,
        *,
        clients: ClientFactory | None = None,
        executor_url: str | None = None,
        invoker_email: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        """``executor_url`` defaults to ``SAGA_STEP_EXECUTOR_URL`` and ``invoker_email`` (the service
        account whose OIDC token Cloud Tasks attaches) to ``SAGA_TASKS_INVOKER_EMAIL``, both read from
        the client factory's environment."""
        self._clients = clients or default_factory()
        env = self._clients.env
        base = settings or Settings.from_env(env)
        self.settings = dataclasses.replace(
            base, project_id=project_id, location=location_id, task_queue=queue_id
        )
        self.queue_path = self.settings.queue_path
        self.executor_url = executor_url or env.get("SAGA_STEP_EXECUTOR_URL") or None
        self.invoker_email = invoker_email or env.get("SAGA_TASKS_INVOKER_EMAIL") or None
        self._queue = TaskQueue(self._clients.tasks, self.queue_path)

    def create_retry_task(
        self,
        url: str,
        payload: Any,
        max_attempts: int,
        *,
        schedule_time: datetime.datetime | float | None = None,
        task_id: str | None = None,
        headers: dict[str, str] | None = None,
        method: str = "POST",
        oidc_audience: str | None = None,
    ) -> Task:
        """Create the task; returns the created ``google.cloud.tasks_v2.Task``.

        ``schedule_time`` is a datetime or seconds from now (at most 30 days). ``task_id`` names the
        task (``[A-Za-z0-9_-]``, ≤ 500): creating the same name again, or within about a day after it ran,
        raises ``TaskAlreadyExistsError``. ``oidc_audience`` is the audience of the OIDC token Cloud Tasks
        sends to the step executor (default: the executor URL); the participant gets its own token,
        audience = its origin. Raises ``InvalidRequestError`` for a bad call (host not allowed,
        max_attempts outside 1..SAGA_QUEUE_MAX_ATTEMPTS, ...).
        """
        if not self.executor_url:
            raise SagaError(
                "TaskManager needs the step executor's URL (executor_url= or SAGA_STEP_EXECUTOR_URL): "
                "Cloud Tasks retry settings are per queue, so max_attempts is enforced by the executor"
            )
        spec = ActionSpec.from_dict(
            {
                "url": url,
                "method": method,
                "payload": payload,
                "headers": headers or {},
                "auth": "oidc",
                "retry": {"max_attempts": max_attempts},
            },
            self.settings,
            path="task",
            form="request",
        )
        if task_id is not None and (not task_id or len(task_id) > 500 or set(task_id) - TASK_ID_CHARS):
            raise ValueError("task_id must be 1-500 letters, digits, '_' or '-'")
        envelope = _envelope(task_id or uuid.uuid4().hex, spec.to_dict())
        return self._queue.create(
            HttpTask(
                url=self.executor_url,
                body=json.dumps(envelope, separators=(",", ":")).encode("utf-8"),
                dispatch_deadline_seconds=int(self.settings.dispatch_deadline_seconds),
                invoker_email=self.invoker_email,
                audience=oidc_audience,
                name=f"{self.queue_path}/tasks/{task_id}" if task_id is not None else None,
                schedule_time=_schedule(schedule_time),
            )
        )


def _envelope(name_id: str, call: dict[str, Any]) -> dict[str, Any]:
    """The step executor's task body for one call without a saga (no callback, no outputs)."""
    return {
        "saga_id": "tasks",
        "execution_id": None,
        "step_index": 0,
        "step_name": name_id,
        "action": "execute",
        "call": call,
        "callback_url": None,
        "outputs": {},
    }


def _schedule(value: datetime.datetime | float | None) -> datetime.datetime | None:
    if value is None:
        return None
    now = datetime.datetime.now(datetime.UTC)
    if isinstance(value, datetime.datetime):
        when = value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
    else:
        if value < 0:
            raise ValueError("schedule_time in seconds from now must not be negative")
        when = now + datetime.timedelta(seconds=float(value))
    if (when - now).total_seconds() > MAX_SCHEDULE_SECONDS:
        raise ValueError("schedule_time must be at most 30 days ahead (Cloud Tasks limit)")
    return when.astimezone(datetime.UTC)
