"""The Cloud Tasks adapter: one HTTP task for the step executor, with its OIDC token, dispatch deadline,
optional name and schedule. Google's client libraries are imported on first use, not with this module."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from saga_orchestrator.errors import TaskAlreadyExistsError

if TYPE_CHECKING:
    from google.cloud.tasks_v2 import CloudTasksClient, Task


@dataclass(frozen=True)
class HttpTask:
    url: str
    body: bytes
    dispatch_deadline_seconds: int
    # The service account whose OIDC token (audience ``audience``) Cloud Tasks attaches; None: no token.
    invoker_email: str | None = None
    audience: str | None = None
    # Full task name (``<queue>/tasks/<id>``); None lets Cloud Tasks name it (no deduplication).
    name: str | None = None
    schedule_time: datetime.datetime | None = None


class TaskQueue:
    def __init__(self, client: Callable[[], CloudTasksClient], queue_path: str) -> None:
        self._client = client
        self.queue_path = queue_path

    def create(self, spec: HttpTask) -> Task:
        """Raises ``TaskAlreadyExistsError`` when a task of that name exists or ran within about a day."""
        from google.api_core import exceptions as gexc
        from google.cloud import tasks_v2
        from google.protobuf import duration_pb2, timestamp_pb2

        http_request = tasks_v2.HttpRequest(
            http_method=tasks_v2.HttpMethod.POST,
            url=spec.url,
            headers={"Content-Type": "application/json"},
            body=spec.body,
        )
        if spec.invoker_email:
            http_request.oidc_token = tasks_v2.OidcToken(
                service_account_email=spec.invoker_email, audience=spec.audience or spec.url
            )
        task = tasks_v2.Task(
            http_request=http_request,
            dispatch_deadline=duration_pb2.Duration(seconds=spec.dispatch_deadline_seconds),
        )
        if spec.name is not None:
            task.name = spec.name
        if spec.schedule_time is not None:
            stamp = timestamp_pb2.Timestamp()
            stamp.FromDatetime(spec.schedule_time)
            task.schedule_time = stamp
        try:
            return self._client().create_task(parent=self.queue_path, task=task)
        except gexc.AlreadyExists:
            raise TaskAlreadyExistsError(spec.name or f"{self.queue_path}/tasks/(unnamed)") from None

    def pending(self, name_prefix: str) -> list[tuple[str, int, int, str | None]]:
        """The queue's tasks whose id starts with ``name_prefix``: (name, dispatch count, response
        count, the last attempt's answer as ``HTTP <code>``-like text, or None). Lists the whole queue
        (``tasks.list`` has no name filter;
        https://cloud.google.com/tasks/docs/reference/rpc/google.cloud.tasks.v2#listtasksrequest)."""
        from google.cloud import tasks_v2

        pager = self._client().list_tasks(
            request=tasks_v2.ListTasksRequest(
                parent=self.queue_path, page_size=1000, response_view=tasks_v2.Task.View.BASIC
            )
        )
        wanted = f"{self.queue_path}/tasks/{name_prefix}"
        found = []
        for task in pager:
            if not task.name.startswith(wanted):
                continue
            last = task.last_attempt.response_status if task.last_attempt else None
            answer = (
                f"{last.message or 'code'} ({last.code})" if last and (last.code or last.message) else None
            )
            found.append((str(task.name), int(task.dispatch_count), int(task.response_count), answer))
        return found
