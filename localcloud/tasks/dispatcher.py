"""The dispatcher: sends each due task to its HTTP target, once, and reschedules failures.

Event-driven, never polling: due times sit in one heap; the loop sleeps on the injected clock until the
earliest due time or the next rate-limit token, or until ``wake()`` (a new task, a resumed queue, a
finished dispatch that frees a concurrency slot). Per queue, a token bucket enforces
``max_dispatches_per_second`` with ``max_burst_size`` (and, with ``LOCALCLOUD_QUOTAS``, Google's dispatch
quota per queue, ``localcloud.quotas``), and ``max_concurrent_dispatches`` bounds the requests in flight;
paused queues keep their due tasks until resumed. ``RunTask`` bypasses both (as documented for the real
service).

One attempt (https://cloud.google.com/tasks/docs/creating-http-target-tasks#handler), of the task's
request with the queue's ``http_target`` applied (``localcloud.tasks.routing``):
- headers ``X-CloudTasks-QueueName``/``-TaskName`` (short ids), ``-TaskRetryCount`` (all previous
  attempts, "includes attempts where the task failed due to 5XX error codes and never reached the
  execution phase"), ``-TaskExecutionCount`` (previous attempts that got a response from the handler:
  any status below 500; a 5xx, no response in time, a connection failure and a platform refusal are not
  counted), ``-TaskETA`` (the attempt's schedule time, fractional epoch seconds), and after an attempt
  that got an HTTP status ``-TaskPreviousResponse`` (that status) and ``-TaskRetryReason`` (empty, as
  real HTTP targets receive it); ``User-Agent: Google-Cloud-Tasks``; no Content-Type unless the task set
  one; ``oidc_token`` / ``oauth_token`` become ``Authorization: Bearer`` (replacing any header of that
  name).
- A ``refuse_dispatch`` fault (``localcloud.tasks.faults``) stands for a busy platform in front of the
  target: the attempt is counted as a dispatch and answered 429 or 503 without reaching the target.
- Connections are kept alive between attempts (``localcloud._http.KeepAliveConnector``: reused only while
  idle at most ``IDLE_REUSE_SECONDS`` and only if the target has not closed it nor sent anything on it).
  A request is never sent twice on its own: an attempt whose connection fails after the request was
  written is a failed attempt like any other.
- 2xx is success (the task is deleted and its name tombstoned); any other status, a connection error or
  no response within ``dispatch_deadline`` is a failed attempt, retried after the RetryConfig backoff
  measured from the failure ("scheduled for retry ... after it fails"), or dropped when the stop rule says
  so. A 429/503 ``Retry-After`` (in seconds) lengthens that backoff, up to ``max_backoff``.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import heapq
import itertools
import logging
from typing import Any

import aiohttp
from google.api_core import exceptions as gexc
from google.rpc import code_pb2, status_pb2

from localcloud._http import IDLE_REUSE_SECONDS, KeepAliveConnector
from localcloud.auth import TokenAuthority
from localcloud.clock import SystemClock, sleep_until
from localcloud.quotas import TASKS_DISPATCHES, Quotas
from localcloud.tasks import retry, routing
from localcloud.tasks.faults import DISPATCH_KINDS, Fault, Faults
from localcloud.tasks.state import (
    HttpMethod,
    QueueRecord,
    TaskRecord,
    TasksState,
    policy_of,
    seconds_of,
    short_id,
    timestamp_of,
)

log = logging.getLogger("localcloud.tasks")

USER_AGENT = "Google-Cloud-Tasks"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
_DROPPED_HEADERS = ("host", "content-length", "user-agent")
_DROPPED_PREFIXES = ("x-google-", "x-appengine-")
_METHODS = {
    HttpMethod.POST: "POST",
    HttpMethod.GET: "GET",
    HttpMethod.HEAD: "HEAD",
    HttpMethod.PUT: "PUT",
    HttpMethod.DELETE: "DELETE",
    HttpMethod.PATCH: "PATCH",
    HttpMethod.OPTIONS: "OPTIONS",
}


class _AttemptTimeoutError(Exception):
    pass


class Dispatcher:
    def __init__(
        self,
        state: TasksState,
        authority: TokenAuthority,
        *,
        idle_reuse_seconds: float = IDLE_REUSE_SECONDS,
        faults: Faults | None = None,
        quotas: Quotas | None = None,
    ) -> None:
        self.state = state
        self.quotas = quotas or Quotas(clock=state.clock)
        # Test-only faults (localcloud.tasks.faults); none armed = the real behaviour.
        self.faults = faults or Faults()
        self.idle_reuse_seconds = idle_reuse_seconds
        self.connector: KeepAliveConnector | None = None
        self.clock = state.clock
        self.authority = authority
        self._heap: list[tuple[float, int, str, int]] = []
        self._seq = itertools.count()
        self._ready: dict[str, list[tuple[TaskRecord, int]]] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._attempts: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._idle = False
        self.sleeping_until: float | None = None

    async def start(self) -> None:
        self.connector = KeepAliveConnector(self.idle_reuse_seconds)
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None), connector=self.connector
        )
        self._loop_task = asyncio.create_task(self._run(), name="cloud-tasks-dispatcher")

    async def stop(self) -> None:
        tasks = [t for t in (self._loop_task, *self._attempts) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._session is not None:
            await self._session.close()

    @property
    def idle(self) -> bool:
        """The loop is waiting: until ``sleeping_until``, or for an event when that is None."""
        return self._idle and not self._wake.is_set()

    @property
    def attempts_in_flight(self) -> int:
        return len(self._attempts)

    def wake(self) -> None:
        self._wake.set()

    def schedule(self, task: TaskRecord) -> None:
        """(Re)queue ``task`` for its ``schedule_time``; earlier heap entries for it become stale. A task
        that is due and may go at once (running queue, a free slot, a token, nobody ahead of it) is
        launched right here, without a pass of the loop."""
        task.generation += 1
        if task.schedule_time <= self.clock.now() and self._launch_if_free(task):
            return
        heapq.heappush(self._heap, (task.schedule_time, next(self._seq), task.name, task.generation))
        self.wake()

    def _launch_if_free(self, task: TaskRecord) -> bool:
        queue = self.state.queues.get(task.queue)
        if (
            queue is None
            or queue.tasks.get(task.name) is not task
            or task.in_flight
            or not queue.running
            or self._ready.get(queue.name)
            or queue.in_flight >= queue.max_concurrent
            or self._slot(queue, self.clock.now()) is not None
        ):
            return False
        self._launch(queue, task)
        return True

    def run_now(self, queue: QueueRecord, task: TaskRecord) -> None:
        """RunTask: dispatch immediately, ignoring pause and rate limits."""
        task.generation += 1
        task.schedule_time = self.clock.now()
        task.message.schedule_time.CopyFrom(timestamp_of(task.schedule_time))
        if not task.in_flight:
            self._launch(queue, task)

    # the loop

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                next_wake = self._dispatch_due()
            except Exception:  # a bug must not stop every future dispatch
                log.exception("dispatcher pass failed")
                next_wake = self.clock.now() + 1.0
            self.sleeping_until = next_wake
            self._idle = True
            try:
                if next_wake is None:
                    await self._wake.wait()
                    continue
                waiters = [
                    asyncio.create_task(self._wake.wait()),
                    asyncio.create_task(sleep_until(self.clock, next_wake)),
                ]
                try:
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waiters:
                        waiter.cancel()
            finally:
                self._idle = False

    def _dispatch_due(self) -> float | None:
        """Launch what may go now; return when something else may go (None: only an event can tell)."""
        now = self.clock.now()
        while self._heap and self._heap[0][0] <= now:
            _, _, name, generation = heapq.heappop(self._heap)
            found = self._live(name, generation)
            if found is not None:
                self._ready.setdefault(found[0].name, []).append((found[1], generation))
        next_wake = self._heap[0][0] if self._heap else None
        for queue_name in list(self._ready):
            queue = self.state.queues.get(queue_name)
            ready = self._ready[queue_name]
            ready[:] = [
                (t, g)
                for t, g in ready
                if queue is not None
                and queue.tasks.get(t.name) is t
                and t.generation == g
                and not t.in_flight
            ]
            if not ready or queue is None:
                self._ready.pop(queue_name, None)
                continue
            if not queue.running:
                continue
            while ready and queue.in_flight < queue.max_concurrent:
                token_at = self._slot(queue, now)
                if token_at is not None:
                    next_wake = token_at if next_wake is None else min(next_wake, token_at)
                    break
                self._launch(queue, ready.pop(0)[0])
        return next_wake

    def _slot(self, queue: QueueRecord, now: float) -> float | None:
        """Take a token from the queue's bucket and a dispatch from its quota (``localcloud.quotas``):
        None when both were taken, else when both may be. Over quota a dispatch waits, as Cloud Tasks
        throttles a queue rather than failing its tasks."""
        wait = self.quotas.wait_seconds(TASKS_DISPATCHES, queue.name)
        if wait > 0:
            return now + wait
        if not queue.bucket.take(now):
            return queue.bucket.next_token_at(now)
        self.quotas.charge(TASKS_DISPATCHES, queue.name)
        return None

    def _live(self, name: str, generation: int) -> tuple[QueueRecord, TaskRecord] | None:
        queue_name = name.split("/tasks/")[0]
        queue = self.state.queues.get(queue_name)
        task = queue.tasks.get(name) if queue is not None else None
        if queue is None or task is None or task.generation != generation or task.in_flight:
            return None
        return queue, task

    def _launch(self, queue: QueueRecord, task: TaskRecord) -> None:
        task.in_flight = True
        queue.in_flight += 1
        attempt = asyncio.create_task(self._attempt(queue, task), name=f"dispatch {task.name}")
        self._attempts.add(attempt)
        attempt.add_done_callback(self._attempts.discard)

    # one attempt

    def _headers(self, queue: QueueRecord, task: TaskRecord, request: Any) -> dict[str, str]:
        """The headers of an attempt of ``task``'s ``request`` (as the queue's routing made it)."""
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in _DROPPED_HEADERS and not k.lower().startswith(_DROPPED_PREFIXES)
        }
        headers["User-Agent"] = USER_AGENT
        headers["X-CloudTasks-QueueName"] = short_id(queue.name)
        headers["X-CloudTasks-TaskName"] = short_id(task.name)
        headers["X-CloudTasks-TaskRetryCount"] = str(task.message.dispatch_count)
        headers["X-CloudTasks-TaskExecutionCount"] = str(task.execution_count)
        headers["X-CloudTasks-TaskETA"] = f"{task.schedule_time:.6f}"
        if task.previous_response is not None:
            headers["X-CloudTasks-TaskPreviousResponse"] = str(task.previous_response)
            headers["X-CloudTasks-TaskRetryReason"] = ""
        token = self._token(request)
        if token is not None:
            for key in [k for k in headers if k.lower() == "authorization"]:
                del headers[key]
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _token(self, request: Any) -> str | None:
        if request.HasField("oidc_token"):
            oidc = request.oidc_token
            return self.authority.mint_id_token(oidc.audience or request.url, oidc.service_account_email)
        if request.HasField("oauth_token"):
            oauth = request.oauth_token
            scopes = (oauth.scope or CLOUD_PLATFORM_SCOPE,)
            return self.authority.mint_access_token(oauth.service_account_email, scopes).token
        return None

    async def _attempt(self, queue: QueueRecord, task: TaskRecord) -> None:
        message = task.message
        now = self.clock.now()
        request: Any = None
        try:
            request = routing.routed(queue.message, message.http_request)
            headers: dict[str, str] | None = self._headers(queue, task, request)  # counts before this attempt
        except Exception:
            log.exception("could not prepare the dispatch of %s", task.name)
            headers = None
        if task.first_attempt_at is None:
            task.first_attempt_at = now
            message.first_attempt.dispatch_time.CopyFrom(timestamp_of(now))
        message.dispatch_count += 1
        message.last_attempt.Clear()
        message.last_attempt.schedule_time.CopyFrom(timestamp_of(task.schedule_time))
        message.last_attempt.dispatch_time.CopyFrom(timestamp_of(now))
        status: int | None = None
        retry_after: float | None = None
        failure = code_pb2.UNAVAILABLE
        refused = self.faults.take(queue.name, task.name, DISPATCH_KINDS) if headers is not None else None
        try:
            if headers is None:
                failure = code_pb2.INTERNAL
            elif refused is None:
                status, retry_after = await self._send(message, request, headers)
        except _AttemptTimeoutError:
            failure = code_pb2.DEADLINE_EXCEEDED
        except (aiohttp.ClientError, OSError, ValueError) as error:
            log.info("dispatch of %s failed: %s", task.name, error)
        except Exception:
            log.exception("dispatch of %s failed", task.name)
            failure = code_pb2.INTERNAL
        finally:
            task.in_flight = False
            queue.in_flight -= 1
            if self._ready:  # a freed slot may let a waiting task go
                self.wake()
        if queue.tasks.get(task.name) is not task:  # deleted or purged meanwhile
            return
        if refused is not None:
            self._refused(queue, task, refused)
            return
        self._record(queue, task, status, failure, retry_after)

    async def _send(self, message: Any, request: Any, headers: dict[str, str]) -> tuple[int, float | None]:
        assert self._session is not None
        method = _METHODS.get(request.http_method, "POST")
        deadline = seconds_of(message.dispatch_deadline)

        async def call() -> tuple[int, float | None]:
            assert self._session is not None
            async with self._session.request(
                method,
                request.url,
                headers=headers,
                data=request.body if request.body else None,
                skip_auto_headers=("Content-Type",),
            ) as response:
                await response.read()
                return response.status, retry_after_seconds(
                    response.headers.get("Retry-After", ""), self.clock.now()
                )

        if isinstance(self.clock, SystemClock):
            # The usual case: the deadline is a timer handle on the loop, and the request goes out in this
            # pass of the loop instead of the next one (no sending task, no timer task, no wait).
            timeout = asyncio.timeout(deadline)
            try:
                async with timeout:
                    return await call()
            except TimeoutError:
                if timeout.expired():
                    raise _AttemptTimeoutError from None
                raise
        sending = asyncio.create_task(call())
        timer = asyncio.create_task(self.clock.sleep(deadline))
        try:
            done, _ = await asyncio.wait({sending, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            if not sending.done():
                sending.cancel()
        if sending not in done:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sending
            raise _AttemptTimeoutError
        return sending.result()

    def _record(
        self,
        queue: QueueRecord,
        task: TaskRecord,
        status: int | None,
        failure: int,
        retry_after: float | None,
    ) -> None:
        message = task.message
        now = self.clock.now()
        if status is not None:
            message.response_count += 1
            message.last_attempt.response_time.CopyFrom(timestamp_of(now))
            message.last_attempt.response_status.CopyFrom(_rpc_status(status))
            if status < 500:
                task.execution_count += 1
        else:
            message.last_attempt.response_status.CopyFrom(
                status_pb2.Status(code=failure, message=code_pb2.Code.Name(failure))
            )
        task.previous_response = status
        if status is not None and 200 <= status < 300:
            self.state.remove_task(queue, task.name)
            return
        self._retry_or_drop(queue, task, status, retry_after)

    def _refused(self, queue: QueueRecord, task: TaskRecord, fault: Fault) -> None:
        """A dispatch the busy platform answered itself: an attempt, but no response from the handler
        (``response_count`` and the execution count stay), and the previous response for the next one."""
        log.info("dispatch of %s refused with HTTP %d (refuse_dispatch fault)", task.name, fault.status)
        task.message.last_attempt.response_status.CopyFrom(_rpc_status(fault.status))
        task.previous_response = fault.status
        self._retry_or_drop(queue, task, fault.status, None)

    def _retry_or_drop(
        self, queue: QueueRecord, task: TaskRecord, status: int | None, retry_after: float | None
    ) -> None:
        message = task.message
        now = self.clock.now()
        policy = policy_of(message.retry_config) if message.HasField("retry_config") else queue.retry_policy
        attempts = message.dispatch_count
        first = task.first_attempt_at if task.first_attempt_at is not None else now
        if not retry.should_retry(policy, attempts, first, task.created_at, now):
            log.info("task %s dropped after %d attempts", task.name, attempts)
            self.state.remove_task(queue, task.name)
            return
        delay = retry.backoff(policy, attempts)
        if retry_after is not None and status in (429, 503):
            delay = max(delay, min(retry_after, policy.max_backoff))
        task.schedule_time = now + delay
        message.schedule_time.CopyFrom(timestamp_of(task.schedule_time))
        self.schedule(task)


def retry_after_seconds(value: str, now: float) -> float | None:
    """``Retry-After`` as delay-seconds or as an HTTP-date (RFC 9110 §10.2.3); None if absent or bad."""
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


# google.api_core has no gRPC code on these exceptions; the mapping is google.rpc.Code's
# (https://github.com/googleapis/googleapis/blob/master/google/rpc/code.proto).
_CODES_WITHOUT_EXCEPTION = {429: code_pb2.RESOURCE_EXHAUSTED}


def _rpc_status(http_status: int) -> status_pb2.Status:
    if 200 <= http_status < 300:
        return status_pb2.Status(code=code_pb2.OK)
    error = gexc.from_http_status(http_status, f"HTTP status code {http_status}")
    code = error.grpc_status_code
    value = code.value[0] if code is not None else _CODES_WITHOUT_EXCEPTION.get(http_status, code_pb2.UNKNOWN)
    return status_pb2.Status(code=value, message=f"HTTP status code {http_status}")
