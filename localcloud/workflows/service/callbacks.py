"""HTTP callback endpoints of running executions: the registry behind ``events.create_callback_endpoint``
and ``events.await_callback`` (served over HTTP by :mod:`~localcloud.workflows.service.callbacks_http`).

``CallbackRegistry`` holds, per execution, the callbacks made by ``events.create_callback_endpoint``: the
HTTP method each accepts, the payloads received and not yet consumed (a FIFO: a request that arrives
before anyone waits is kept, as the real ``availablePayloads`` are) and the step waiting on it. A parked
``await_callback`` costs one future and nothing else, so tens of thousands of executions can wait at once.
A callback is forgotten when its execution ends; a request to it then gets 404.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from localcloud.clock import Clock, SystemClock
from localcloud.workflows.lang.errors import WorkflowError

CALLBACK_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})


class Callback:
    __slots__ = ("execution", "id", "method", "payloads", "url", "waiter")

    def __init__(self, execution: str, callback_id: str, method: str, url: str) -> None:
        self.execution = execution
        self.id = callback_id
        self.method = method
        self.url = url
        self.payloads: deque[dict[str, Any]] = deque()
        self.waiter: asyncio.Future[dict[str, Any]] | None = None

    @property
    def name(self) -> str:
        return f"{self.execution}/callbacks/{self.id}"

    @property
    def waiters(self) -> int:
        return 1 if self.waiter is not None and not self.waiter.done() else 0

    def describe(self) -> dict[str, Any]:
        """The REST ``Callback`` resource."""
        return {
            "name": self.name,
            "method": self.method,
            "availablePayloads": [json.dumps(p, separators=(",", ":")) for p in self.payloads],
            "waiters": str(self.waiters),  # int64 → JSON string, as in every Google REST API
        }


class Delivery:
    ACCEPTED = "accepted"
    NOT_FOUND = "not_found"
    WRONG_METHOD = "wrong_method"


@dataclass
class CallbackRegistry:
    """Callbacks of the executions that are still running. Use from the event loop's thread."""

    clock: Clock = field(default_factory=SystemClock)
    base_url: str = "http://127.0.0.1:8787"
    _executions: dict[str, dict[str, Callback]] = field(default_factory=dict)

    def open_execution(self, execution: str) -> None:
        self._executions.setdefault(execution, {})

    def close_execution(self, execution: str) -> None:
        """Forget the execution's callbacks; later requests to them get 404."""
        for callback in self._executions.pop(execution, {}).values():
            if callback.waiter is not None and not callback.waiter.done():
                callback.waiter.cancel()
            callback.payloads.clear()

    def create(self, execution: str, method: str = "POST") -> Callback:
        callbacks = self._executions.get(execution)
        if callbacks is None:
            raise KeyError(execution)
        callback_id = uuid.uuid4().hex
        callback = Callback(
            execution, callback_id, method, f"{self.base_url}/v1/{execution}/callbacks/{callback_id}"
        )
        callbacks[callback_id] = callback
        return callback

    def get(self, execution: str, callback_id: str) -> Callback | None:
        return self._executions.get(execution, {}).get(callback_id)

    def list(self, execution: str) -> list[Callback] | None:
        callbacks = self._executions.get(execution)
        return None if callbacks is None else sorted(callbacks.values(), key=lambda c: c.id)

    def find_by_url(self, execution: str, url: str) -> Callback | None:
        prefix = f"/v1/{execution}/callbacks/"
        _, _, path = url.partition("/v1/")
        path = "/v1/" + path
        if not path.startswith(prefix):
            return None
        return self.get(execution, path.removeprefix(prefix).split("?", 1)[0].strip("/"))

    def deliver(self, execution: str, callback_id: str, method: str, payload: dict[str, Any]) -> str:
        callback = self.get(execution, callback_id)
        if callback is None:
            return Delivery.NOT_FOUND
        if method != callback.method:
            return Delivery.WRONG_METHOD
        waiter = callback.waiter
        if waiter is not None and not waiter.done():
            callback.waiter = None
            waiter.set_result(payload)
        else:
            callback.payloads.append(payload)
        return Delivery.ACCEPTED

    async def wait(self, callback: Callback, timeout: float, clock: Clock | None = None) -> dict[str, Any]:
        """The oldest payload not yet consumed, waiting up to ``timeout`` seconds of ``clock`` for one.

        A payload delivered in the same instant the timeout fires is returned, never lost; a payload that
        arrives after the timeout stays queued for the next wait."""
        if callback.payloads:
            return callback.payloads.popleft()
        if callback.waiter is not None and not callback.waiter.done():
            raise WorkflowError.tagged("ValueError", "another step is already waiting on this callback")
        clock = clock or self.clock
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        callback.waiter = waiter
        try:
            if isinstance(clock, SystemClock):
                # A timer handle instead of a second task: the cheap path when thousands of steps wait.
                handle = asyncio.get_running_loop().call_later(max(0.0, timeout), _expire, waiter)
                try:
                    return await waiter
                finally:
                    handle.cancel()
            sleeper = asyncio.ensure_future(clock.sleep(max(0.0, timeout)))
            sleeper.add_done_callback(lambda s: None if s.cancelled() else _expire(waiter))
            await asyncio.sleep(0)  # let the sleeper take its deadline from the clock now, not later
            try:
                return await waiter
            finally:
                sleeper.cancel()
        except _Expired:
            raise WorkflowError.tagged(
                "TimeoutError", f"no callback received within {_format_seconds(timeout)} seconds"
            ) from None
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # The execution is being cancelled just as a payload arrived: keep it queued.
                callback.payloads.appendleft(waiter.result())
            raise
        finally:
            if callback.waiter is waiter:
                callback.waiter = None
            if not waiter.done():
                waiter.cancel()


class _Expired(Exception):
    pass


def _expire(waiter: asyncio.Future[dict[str, Any]]) -> None:
    if not waiter.done():
        waiter.set_exception(_Expired())


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


def callback_for(registry: CallbackRegistry, execution: str, value: Mapping[str, Any]) -> Callback:
    """The callback an ``await_callback`` argument names, with the errors the real function raises."""
    if not isinstance(value, Mapping):
        raise WorkflowError.tagged("TypeError", "callback must be a map with a url field")
    url = value.get("url")
    if not isinstance(url, str):
        raise WorkflowError.tagged("TypeError", "callback.url must be a string")
    callback = registry.find_by_url(execution, url)
    if callback is None:
        raise WorkflowError.tagged("ValueError", f"callback {url} does not belong to this execution")
    return callback
