"""A ``Host`` for one-shot runs (``python -m localcloud workflows run``) and tests: callbacks are kept in
memory (``deliver`` plays the caller), connectors are refused, tokens come from a ``TokenAuthority``."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import json
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from localcloud.auth import TokenAuthority
from localcloud.clock import Clock, ManualClock, SystemClock
from localcloud.workflows.engine.host import ExecutionInfo
from localcloud.workflows.lang.errors import WorkflowError

T = TypeVar("T")

CALLBACK_BASE_URL = "http://callbacks.invalid"
INTERNAL_HOST_SUFFIXES = (".googleapis.com", ".run.app", ".cloudfunctions.net")


@dataclass
class _Callback:
    method: str
    payloads: deque[dict[str, Any]] = field(default_factory=deque)
    waiters: deque[asyncio.Future[dict[str, Any]]] = field(default_factory=deque)


class StandaloneHost:
    def __init__(
        self,
        *,
        clock: Clock | None = None,
        info: ExecutionInfo | None = None,
        authority: TokenAuthority | None = None,
        internal_url_prefixes: tuple[str, ...] = (),
        log_sink: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.info = info or ExecutionInfo()
        self._authority = authority
        self.internal_url_prefixes = internal_url_prefixes
        self.logs: list[tuple[str, Any]] = []
        self._log_sink = log_sink
        self._callbacks: dict[str, _Callback] = {}
        self._ids = itertools.count(1)

    @property
    def authority(self) -> TokenAuthority:
        if self._authority is None:
            self._authority = TokenAuthority(clock=self.clock)
        return self._authority

    def id_token(self, audience: str) -> str:
        return self.authority.mint_id_token(audience, self.info.service_account)

    def access_token(self, scopes: tuple[str, ...] = ()) -> str:
        chosen = scopes or ("https://www.googleapis.com/auth/cloud-platform",)
        return self.authority.mint_access_token(self.info.service_account, chosen).token

    async def create_callback_endpoint(self, http_callback_method: str) -> dict[str, Any]:
        url = (
            f"{CALLBACK_BASE_URL}/v1/projects/{self.info.project_id}/locations/{self.info.location}"
            f"/workflows/{self.info.workflow_id}/executions/{self.info.execution_id}/callbacks/"
            f"{next(self._ids)}"
        )
        self._callbacks[url] = _Callback(http_callback_method)
        return {"url": url}

    @property
    def waiting(self) -> int:
        """How many ``await_callback`` calls are parked."""
        return sum(len(c.waiters) for c in self._callbacks.values())

    def deliver(self, url: str, request: Mapping[str, Any]) -> bool:
        """Play an HTTP request to a callback URL: ``request`` may hold ``body``, ``headers``, ``method``,
        ``query``. Returns False when no such callback exists or the method is not the one it accepts."""
        callback = self._callbacks.get(url)
        method = str(request.get("method", callback.method if callback else "POST")).upper()
        if callback is None or method != callback.method:
            return False
        payload = {
            "http_request": {
                "body": request.get("body"),
                "headers": dict(request.get("headers", {})),
                "method": method,
                "query": dict(request.get("query", {})),
                "url": urlsplit(url).path,
            },
            "received_time": datetime.datetime.fromtimestamp(self.clock.now(), datetime.UTC).strftime(
                "%Y-%m-%d %H:%M:%S.%f +0000 UTC"
            ),
            "type": "HTTP",
        }
        while callback.waiters:
            waiter = callback.waiters.popleft()
            if not waiter.done():
                waiter.set_result(payload)
                return True
        callback.payloads.append(payload)
        return True

    async def await_callback(self, callback: Mapping[str, Any], timeout: float) -> dict[str, Any]:
        entry = self._callbacks.get(str(callback.get("url")))
        if entry is None:
            raise WorkflowError.tagged("ValueError", "events.await_callback: unknown callback")
        if entry.payloads:
            return entry.payloads.popleft()
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        entry.waiters.append(waiter)
        timer = asyncio.ensure_future(self.clock.sleep(timeout))
        try:
            done, _ = await asyncio.wait([waiter, timer], return_when=asyncio.FIRST_COMPLETED)  # type: ignore[type-var]
        finally:
            timer.cancel()
            if not waiter.done():
                waiter.cancel()
            if waiter in entry.waiters:
                entry.waiters.remove(waiter)
        if waiter in done and not waiter.cancelled():
            return waiter.result()
        raise WorkflowError.tagged("TimeoutError", f"events.await_callback: no callback within {timeout:g} s")

    async def call_connector(self, name: str, args: Mapping[str, Any]) -> Any:
        raise WorkflowError.tagged(
            "SystemError",
            f"connector '{name}' needs the Workflows service (python -m localcloud serve); "
            "a standalone run has no Google APIs to call",
        )

    def log(self, severity: str, payload: Any) -> None:
        self.logs.append((severity, payload))
        if self._log_sink is not None:
            self._log_sink(severity, payload)

    def is_internal_url(self, url: str) -> bool:
        if any(url.startswith(prefix) for prefix in self.internal_url_prefixes):
            return True
        host = (urlsplit(url).hostname or "").lower()
        return host == "googleapis.com" or host.endswith(INTERNAL_HOST_SUFFIXES)


def stderr_log(severity: str, payload: Any) -> None:
    """``sys.log`` as one Cloud Logging JSON line on stderr."""
    entry = {"severity": severity, "message" if isinstance(payload, str) else "jsonPayload": payload}
    print(json.dumps(entry, default=str), file=sys.stderr, flush=True)


async def run_on_manual_clock(
    awaitable: Awaitable[T],
    clock: ManualClock,
    *,
    max_seconds: float = 366 * 86400.0,
    poll: float = 0.005,
    max_jump: float | None = None,
) -> T:
    """Await ``awaitable`` while moving ``clock`` to each next sleeper's deadline whenever everything is
    parked on it, so sleeps, retry backoff and timeouts pass instantly. Gives up (TimeoutError) once the
    clock has moved ``max_seconds``; while something else (I/O) is pending it polls the real loop.
    With ``max_jump``, sleepers further away than that are left alone (e.g. an HTTP timeout while the
    request is in flight) and only real time moves things on."""
    task = asyncio.ensure_future(awaitable)
    start = clock.now()
    try:
        while True:
            done, _ = await asyncio.wait([task], timeout=poll)
            if done:
                return task.result()
            deadline = clock.next_deadline()
            if deadline is None or (max_jump is not None and deadline - clock.now() > max_jump):
                continue
            if deadline - start > max_seconds:
                raise TimeoutError(f"still running after {max_seconds} simulated seconds")
            await clock.advance(max(0.0, deadline - clock.now()))
    finally:
        if not task.done():
            task.cancel()
