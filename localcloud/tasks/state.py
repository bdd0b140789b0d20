"""Cloud Tasks state: queues, tasks and the tombstones of recently used names, as protobuf messages plus
the counters the dispatcher needs. Every validation rule of the API lives here.

Facts (https://cloud.google.com/tasks/docs/reference/rpc/google.cloud.tasks.v2, https://cloud.google.com/tasks/docs/quotas):

- Queue ids ``[A-Za-z0-9-]{1,100}``; task ids ``[A-Za-z0-9_-]{1,500}``; parent ``projects/P/locations/L``.
- A new queue gets maxAttempts 100, minBackoff 0.1 s, maxBackoff 3600 s, maxDoublings 16,
  maxRetryDuration 0, 500 dispatches/s, burst 100 (output only), 1000 concurrent dispatches.
  ``max_dispatches_per_second`` ≤ 500, ``max_concurrent_dispatches`` ≤ 5000, ``max_attempts`` ≥ -1.
- A deleted queue's name cannot be used again for 7 days (FAILED_PRECONDITION).
- A named task's name cannot be reused while the task exists or for a while after it was deleted or
  finished (ALREADY_EXISTS); the window is ``tombstone_seconds`` (Google documents "up to an hour" to
  "up to 24 hours"; default here one hour).
- HTTP targets: ``http://`` or ``https://`` URL ≤ 2083 characters (empty or relative when the queue's
  ``http_target`` names the host: ``localcloud.tasks.routing``); a body only with POST, PUT or PATCH;
  ``dispatch_deadline`` 15 s .. 30 min (default 10 min); ``schedule_time`` at most 30 days ahead; a task
  is at most 100 KB (the CreateTask reference's bound).

Backoff durations are kept with their fractions (the default ``min_backoff`` is 0.1 s) although the
reference says they are truncated to whole seconds.
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud.tasks_v2.types import queue as queue_types
from google.cloud.tasks_v2.types import target as target_types
from google.cloud.tasks_v2.types import task as task_types
from google.iam.v1 import policy_pb2
from google.protobuf import duration_pb2, timestamp_pb2

from localcloud.clock import Clock
from localcloud.tasks import retry, routing

QueuePb: Any = queue_types.Queue.pb()
TaskPb: Any = task_types.Task.pb()
QueueState = queue_types.Queue.State
View = task_types.Task.View
HttpMethod = target_types.HttpMethod

DEFAULT_MAX_DISPATCHES_PER_SECOND = 500.0
DEFAULT_MAX_CONCURRENT_DISPATCHES = 1000
MAX_DISPATCHES_PER_SECOND = 500.0
MAX_CONCURRENT_DISPATCHES = 5000
DEFAULT_MAX_BURST_SIZE = 100
DEFAULT_DISPATCH_DEADLINE = 600.0
MIN_DISPATCH_DEADLINE = 15.0
MAX_DISPATCH_DEADLINE = 1800.0
MAX_SCHEDULE_AHEAD = 30 * 24 * 3600.0
MAX_TASK_BYTES = 100 * 1024
MAX_URL_LENGTH = 2083
QUEUE_TOMBSTONE_SECONDS = 7 * 24 * 3600.0
TASK_TOMBSTONE_SECONDS = 3600.0

_PARENT = re.compile(r"^projects/[A-Za-z0-9:.-]+/locations/[A-Za-z0-9-]+$")
_QUEUE = re.compile(
    r"^(?P<parent>projects/[A-Za-z0-9:.-]+/locations/[A-Za-z0-9-]+)/queues/(?P<id>[A-Za-z0-9-]{1,100})$"
)
_TASK = re.compile(r"^(?P<queue>.+/queues/[A-Za-z0-9-]{1,100})/tasks/(?P<id>[A-Za-z0-9_-]{1,500})$")
_BODY_METHODS = {HttpMethod.POST, HttpMethod.PUT, HttpMethod.PATCH}
_QUEUE_MASK_PATHS = {
    "rate_limits",
    "rate_limits.max_dispatches_per_second",
    "rate_limits.max_concurrent_dispatches",
    "retry_config",
    "retry_config.max_attempts",
    "retry_config.max_retry_duration",
    "retry_config.min_backoff",
    "retry_config.max_backoff",
    "retry_config.max_doublings",
    "stackdriver_logging_config",
    "stackdriver_logging_config.sampling_ratio",
    "http_target",
    "app_engine_routing_override",
}


def seconds_of(duration: duration_pb2.Duration) -> float:
    return duration.seconds + duration.nanos / 1e9


def duration_of(seconds: float) -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromNanoseconds(round(seconds * 1e9))
    return value


def timestamp_of(seconds: float) -> timestamp_pb2.Timestamp:
    value = timestamp_pb2.Timestamp()
    value.FromNanoseconds(round(seconds * 1e9))
    return value


def epoch_of(stamp: timestamp_pb2.Timestamp) -> float:
    return stamp.seconds + stamp.nanos / 1e9


def short_id(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def burst_for(rate: float) -> int:
    """Google derives the output-only burst size; 500/s gives 100 (the documented default)."""
    return max(1, min(DEFAULT_MAX_BURST_SIZE, math.ceil(rate)))


@dataclass
class TaskRecord:
    """A live task: its message (``Task`` protobuf) and what the dispatcher counts beyond it."""

    message: Any
    queue: str
    created_at: float
    schedule_time: float
    first_attempt_at: float | None = None
    execution_count: int = 0  # attempts that got a response other than 5xx
    previous_response: int | None = None  # HTTP status of the previous attempt, if it got one
    in_flight: bool = False
    generation: int = 0  # bumped on every reschedule; stale heap entries carry an older one

    @property
    def name(self) -> str:
        return str(self.message.name)


class TokenBucket:
    """``max_dispatches_per_second`` refill, ``max_burst_size`` capacity, on the injected clock."""

    def __init__(self, rate: float, capacity: int, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = float(capacity)
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(float(self.capacity), self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def next_token_at(self, now: float) -> float:
        self._refill(now)
        return now if self.tokens >= 1.0 else self.updated + (1.0 - self.tokens) / self.rate


@dataclass
class QueueRecord:
    message: Any
    bucket: TokenBucket
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    in_flight: int = 0
    policy: policy_pb2.Policy = field(default_factory=policy_pb2.Policy)

    @property
    def name(self) -> str:
        return str(self.message.name)

    @property
    def running(self) -> bool:
        return bool(self.message.state == QueueState.RUNNING)

    @property
    def retry_policy(self) -> retry.RetryPolicy:
        return policy_of(self.message.retry_config)

    @property
    def max_concurrent(self) -> int:
        return int(self.message.rate_limits.max_concurrent_dispatches)


def policy_of(config: Any) -> retry.RetryPolicy:
    return retry.RetryPolicy(
        max_attempts=config.max_attempts,
        max_retry_duration=seconds_of(config.max_retry_duration),
        min_backoff=seconds_of(config.min_backoff),
        max_backoff=seconds_of(config.max_backoff),
        max_doublings=config.max_doublings,
    )


def check_parent(parent: str) -> None:
    if not _PARENT.match(parent or ""):
        raise gexc.InvalidArgument(
            f"parent: {parent!r} is not of the form projects/PROJECT/locations/LOCATION"
        )


def check_queue_name(name: str) -> None:
    if not _QUEUE.match(name or ""):
        raise gexc.InvalidArgument(
            f"queue.name: {name!r} is not of the form projects/P/locations/L/queues/QUEUE_ID "
            "(QUEUE_ID: letters, digits and hyphens, at most 100)"
        )


def fill_queue_defaults(message: Any) -> None:
    """Zero (unspecified) settings get Google's defaults; the burst size is always derived."""
    limits = message.rate_limits
    if not limits.max_dispatches_per_second:
        limits.max_dispatches_per_second = DEFAULT_MAX_DISPATCHES_PER_SECOND
    if not limits.max_concurrent_dispatches:
        limits.max_concurrent_dispatches = DEFAULT_MAX_CONCURRENT_DISPATCHES
    limits.max_burst_size = burst_for(limits.max_dispatches_per_second)
    fill_retry_defaults(message.retry_config)


def fill_retry_defaults(config: Any) -> None:
    if not config.max_attempts:
        config.max_attempts = retry.DEFAULT_MAX_ATTEMPTS
    if not config.HasField("min_backoff"):
        config.min_backoff.CopyFrom(duration_of(retry.DEFAULT_MIN_BACKOFF))
    if not config.HasField("max_backoff"):
        config.max_backoff.CopyFrom(duration_of(retry.DEFAULT_MAX_BACKOFF))
    if not config.max_doublings:
        config.max_doublings = retry.DEFAULT_MAX_DOUBLINGS
    if not config.HasField("max_retry_duration"):
        config.max_retry_duration.CopyFrom(duration_of(retry.DEFAULT_MAX_RETRY_DURATION))


def validate_queue_settings(message: Any) -> None:
    """Every bad field at once, named as in the API."""
    problems: list[str] = []
    limits = message.rate_limits
    if not 0 < limits.max_dispatches_per_second <= MAX_DISPATCHES_PER_SECOND:
        problems.append(
            f"rate_limits.max_dispatches_per_second must be in (0, {MAX_DISPATCHES_PER_SECOND:g}]"
        )
    if not 0 < limits.max_concurrent_dispatches <= MAX_CONCURRENT_DISPATCHES:
        problems.append(f"rate_limits.max_concurrent_dispatches must be in [1, {MAX_CONCURRENT_DISPATCHES}]")
    problems.extend(retry_config_problems(message.retry_config, "retry_config"))
    problems.extend(routing.http_target_problems(message.http_target, "http_target"))
    if problems:
        raise gexc.InvalidArgument("; ".join(problems))


def retry_config_problems(config: Any, prefix: str) -> list[str]:
    problems = []
    if config.max_attempts < -1:
        problems.append(f"{prefix}.max_attempts must be -1 (unlimited) or more")
    if seconds_of(config.min_backoff) < 0:
        problems.append(f"{prefix}.min_backoff must not be negative")
    if seconds_of(config.max_backoff) < seconds_of(config.min_backoff):
        problems.append(f"{prefix}.max_backoff must not be less than min_backoff")
    if config.max_doublings < 0:
        problems.append(f"{prefix}.max_doublings must not be negative")
    if seconds_of(config.max_retry_duration) < 0:
        problems.append(f"{prefix}.max_retry_duration must not be negative")
    return problems


class TasksState:
    """Queues and tasks of the emulator. Single-threaded: use from the event loop."""

    def __init__(
        self,
        clock: Clock,
        *,
        task_tombstone_seconds: float = TASK_TOMBSTONE_SECONDS,
        queue_tombstone_seconds: float = QUEUE_TOMBSTONE_SECONDS,
    ) -> None:
        self.clock = clock
        self.task_tombstone_seconds = task_tombstone_seconds
        self.queue_tombstone_seconds = queue_tombstone_seconds
        self.queues: dict[str, QueueRecord] = {}
        self._queue_tombstones: dict[str, float] = {}
        self._task_tombstones: dict[str, float] = {}

    # queues

    def queue(self, name: str) -> QueueRecord:
        check_queue_name(name)
        record = self.queues.get(name)
        if record is None:
            raise gexc.NotFound(f"Queue does not exist. Queue: {name}")
        return record

    def create_queue(self, parent: str, queue: Any) -> QueueRecord:
        check_parent(parent)
        check_queue_name(queue.name)
        if not queue.name.startswith(parent + "/queues/"):
            raise gexc.InvalidArgument(f"queue.name: {queue.name!r} is not in parent {parent!r}")
        if queue.name in self.queues:
            raise gexc.AlreadyExists(f"Queue already exists. Queue: {queue.name}")
        deleted_until = self._queue_tombstones.get(queue.name)
        if deleted_until is not None and deleted_until > self.clock.now():
            raise gexc.FailedPrecondition(
                f"The queue cannot be created because a queue with this name existed too recently. Queue: {queue.name}"
            )
        message = QueuePb()
        message.CopyFrom(queue)
        fill_queue_defaults(message)
        validate_queue_settings(message)
        message.state = QueueState.RUNNING
        return self._store_queue(message)

    def _store_queue(self, message: Any) -> QueueRecord:
        limits = message.rate_limits
        bucket = TokenBucket(limits.max_dispatches_per_second, limits.max_burst_size, self.clock.now())
        record = QueueRecord(message=message, bucket=bucket)
        self.queues[message.name] = record
        return record

    def update_queue(self, queue: Any, paths: list[str]) -> QueueRecord:
        check_queue_name(queue.name)
        for path in paths:
            if path not in _QUEUE_MASK_PATHS:
                raise gexc.InvalidArgument(f"update_mask: unknown or immutable field {path!r}")
        existing = self.queues.get(queue.name)
        if existing is None:
            parent = queue.name.split("/queues/")[0]
            created = QueuePb(name=queue.name)
            _apply_mask(created, queue, paths)
            return self.create_queue(parent, created)
        updated = QueuePb()
        updated.CopyFrom(existing.message)
        _apply_mask(updated, queue, paths)
        fill_queue_defaults(updated)
        validate_queue_settings(updated)
        existing.message = updated
        limits = updated.rate_limits
        existing.bucket.rate = limits.max_dispatches_per_second
        existing.bucket.capacity = limits.max_burst_size
        existing.bucket.tokens = min(existing.bucket.tokens, float(limits.max_burst_size))
        return existing

    def list_queues(self, parent: str, filter_text: str = "") -> list[QueueRecord]:
        check_parent(parent)
        wanted = _queue_state_filter(filter_text)
        prefix = parent + "/queues/"
        return [
            q
            for n, q in sorted(self.queues.items())
            if n.startswith(prefix) and (wanted is None or q.message.state == wanted)
        ]

    def delete_queue(self, name: str) -> QueueRecord:
        record = self.queue(name)
        for task_name in list(record.tasks):
            self.remove_task(record, task_name)
        del self.queues[name]
        self._queue_tombstones[name] = self.clock.now() + self.queue_tombstone_seconds
        return record

    def purge_queue(self, name: str) -> QueueRecord:
        record = self.queue(name)
        for task_name in list(record.tasks):
            self.remove_task(record, task_name)
        record.message.purge_time.CopyFrom(timestamp_of(self.clock.now()))
        return record

    def set_queue_state(self, name: str, state: int) -> QueueRecord:
        record = self.queue(name)
        record.message.state = state
        return record

    # tasks

    def task(self, name: str) -> tuple[QueueRecord, TaskRecord]:
        match = _TASK.match(name or "")
        if not match:
            raise gexc.InvalidArgument(
                f"name: {name!r} is not of the form projects/P/locations/L/queues/Q/tasks/TASK_ID"
            )
        record = self.queue(match["queue"])
        task = record.tasks.get(name)
        if task is None:
            raise gexc.NotFound(
                f"The task no longer exists, though a task with this name existed recently. Task: {name}"
                if self._tombstoned(name)
                else f"Task does not exist. Task: {name}"
            )
        return record, task

    def _tombstoned(self, name: str) -> bool:
        until = self._task_tombstones.get(name)
        if until is None:
            return False
        if until <= self.clock.now():
            del self._task_tombstones[name]
            return False
        return True

    def create_task(self, parent: str, task: Any) -> tuple[QueueRecord, TaskRecord]:
        record = self.queue(parent)
        message = TaskPb()
        message.CopyFrom(task)
        now = self.clock.now()
        if message.name:
            match = _TASK.match(message.name)
            if not match or match["queue"] != parent:
                raise gexc.InvalidArgument(
                    f"task.name: {message.name!r} must be {parent}/tasks/TASK_ID "
                    "(TASK_ID: letters, digits, hyphens and underscores, at most 500)"
                )
            if message.name in record.tasks or self._tombstoned(message.name):
                raise gexc.AlreadyExists(f"Requested entity already exists. Task: {message.name}")
        else:
            message.name = f"{parent}/tasks/{secrets.randbelow(10**19) + 10**19}"
        _validate_task(message, now, record.message.http_target)
        for output_only in (
            "create_time",
            "first_attempt",
            "last_attempt",
            "dispatch_count",
            "response_count",
            "view",
        ):
            message.ClearField(output_only)
        schedule = epoch_of(message.schedule_time) if message.HasField("schedule_time") else now
        schedule = max(schedule, now)
        message.schedule_time.CopyFrom(timestamp_of(schedule))
        message.create_time.CopyFrom(timestamp_of(math.floor(now)))
        if not message.HasField("dispatch_deadline"):
            message.dispatch_deadline.CopyFrom(duration_of(DEFAULT_DISPATCH_DEADLINE))
        if message.HasField("retry_config"):
            fill_retry_defaults(message.retry_config)
        created = TaskRecord(message=message, queue=record.name, created_at=now, schedule_time=schedule)
        record.tasks[message.name] = created
        return record, created

    def remove_task(self, queue: QueueRecord, name: str) -> None:
        """Delete a task and keep its name unusable for ``task_tombstone_seconds``."""
        task = queue.tasks.pop(name, None)
        if task is not None:
            task.generation += 1
            self._prune_tombstones()
            self._task_tombstones.pop(name, None)  # re-insert at the end: the dict stays in expiry order
            self._task_tombstones[name] = self.clock.now() + self.task_tombstone_seconds

    def _prune_tombstones(self) -> None:
        now = self.clock.now()
        while self._task_tombstones:
            oldest, until = next(iter(self._task_tombstones.items()))
            if until > now:
                return
            del self._task_tombstones[oldest]


def _apply_mask(target: Any, source: Any, paths: list[str]) -> None:
    if not paths:
        name = target.name
        state = target.state
        target.CopyFrom(source)
        target.name, target.state = name, state
        return
    for path in paths:
        head, _, leaf = path.partition(".")
        if leaf:
            source_part, target_part = getattr(source, head), getattr(target, head)
            if source_part.DESCRIPTOR.fields_by_name[leaf].message_type is not None:
                getattr(target_part, leaf).CopyFrom(getattr(source_part, leaf))
            else:
                setattr(target_part, leaf, getattr(source_part, leaf))
        else:
            getattr(target, head).CopyFrom(getattr(source, head))


def _queue_state_filter(filter_text: str) -> int | None:
    text = filter_text.strip()
    if not text:
        return None
    match = re.fullmatch(r"state\s*[:=]\s*(\w+)", text)
    if not match or match[1].upper() not in ("RUNNING", "PAUSED", "DISABLED"):
        raise gexc.InvalidArgument(
            f"filter: unsupported expression {filter_text!r} (supported: state:RUNNING|PAUSED|DISABLED)"
        )
    return int(getattr(QueueState, match[1].upper()))


def _validate_task(message: Any, now: float, http_target: Any) -> None:
    problems: list[str] = []
    if message.HasField("app_engine_http_request"):
        problems.append("task.app_engine_http_request is not supported by this emulator; use http_request")
    elif not message.HasField("http_request"):
        problems.append("task.http_request is required")
    else:
        request = message.http_request
        url_problem = routing.url_problem(http_target, request.url)
        if url_problem is not None:
            problems.append(url_problem)
        if len(request.url) > MAX_URL_LENGTH:
            problems.append(f"task.http_request.url must be at most {MAX_URL_LENGTH} characters")
        method = request.http_method or HttpMethod.POST
        if request.body and method not in _BODY_METHODS:
            problems.append("task.http_request.body is only allowed with POST, PUT or PATCH")
        if request.HasField("oidc_token") and not request.oidc_token.service_account_email:
            problems.append("task.http_request.oidc_token.service_account_email is required")
        if request.HasField("oauth_token") and not request.oauth_token.service_account_email:
            problems.append("task.http_request.oauth_token.service_account_email is required")
        if sum(len(k) + len(v) for k, v in request.headers.items()) >= 80 * 1024:
            problems.append("task.http_request.headers must total less than 80 KB")
    if message.HasField("dispatch_deadline"):
        deadline = seconds_of(message.dispatch_deadline)
        if not MIN_DISPATCH_DEADLINE <= deadline <= MAX_DISPATCH_DEADLINE:
            problems.append("task.dispatch_deadline must be between 15s and 1800s")
    if message.HasField("schedule_time") and epoch_of(message.schedule_time) > now + MAX_SCHEDULE_AHEAD:
        problems.append("task.schedule_time must be at most 30 days in the future")
    if message.HasField("retry_config"):
        problems.extend(retry_config_problems(message.retry_config, "task.retry_config"))
    if message.ByteSize() > MAX_TASK_BYTES:
        problems.append(f"Task size too large: {message.ByteSize()} bytes (at most {MAX_TASK_BYTES})")
    if problems:
        raise gexc.InvalidArgument("; ".join(problems))
