"""Awaiting an asynchronous outcome without a bare ``sleep``: poll a check until it holds, in real time.

A check holds when it returns something truthy; it has not held yet when it returns something falsy or
raises ``AssertionError`` (so a check can be a plain ``assert``). At the deadline the helper raises
``AssertionError`` naming ``what``, chained to the check's last ``AssertionError`` if there was one.

- ``eventually`` blocks the calling thread between polls: for synchronous tests.
- ``eventually_async`` sleeps on the running event loop between polls, so an emulator served by that loop
  keeps working; its check may also be a coroutine function.
- ``assert_eventually`` waits until an assertion passes.

All three share ``_Poll``: the deadline, the pause between polls and the failure message."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

T = TypeVar("T")


class _Poll:
    def __init__(self, timeout: float, every: float, what: str) -> None:
        self._timeout = timeout
        self._every = every
        self._what = what
        self._deadline = time.monotonic() + timeout
        self._last_failure: AssertionError | None = None

    @contextlib.contextmanager
    def attempt(self) -> Iterator[None]:
        """Run one poll: an ``AssertionError`` inside counts as "not yet" and is kept for the report."""
        try:
            yield
        except AssertionError as failure:
            self._last_failure = failure

    def pause(self) -> float:
        """The seconds to wait before the next poll; raises once the deadline has passed."""
        if time.monotonic() >= self._deadline:
            raise AssertionError(
                f"timed out after {self._timeout:g}s waiting for {self._what}"
            ) from self._last_failure
        return self._every


def eventually(
    check: Callable[[], T | None], *, timeout: float = 10.0, every: float = 0.01, what: str = "the condition"
) -> T:
    """The first truthy value of ``check()``, polled every ``every`` seconds for at most ``timeout``."""
    poll = _Poll(timeout, every, what)
    while True:
        with poll.attempt():
            if result := check():
                return result
        time.sleep(poll.pause())


async def eventually_async(
    check: Callable[[], T | None] | Callable[[], Awaitable[T | None]],
    *,
    timeout: float = 10.0,
    every: float = 0.002,
    what: str = "the condition",
) -> T:
    """Like ``eventually``, sleeping on the event loop; ``check`` may return an awaitable."""
    poll = _Poll(timeout, every, what)
    while True:
        with poll.attempt():
            outcome = check()
            if result := await outcome if inspect.isawaitable(outcome) else outcome:
                return result
        await asyncio.sleep(poll.pause())


def assert_eventually(
    assertion: Callable[[], object],
    *,
    timeout: float = 10.0,
    every: float = 0.01,
    what: str = "the assertion",
) -> None:
    """Wait until ``assertion()`` runs without raising ``AssertionError``."""

    def passes() -> bool:
        assertion()
        return True

    eventually(passes, timeout=timeout, every=every, what=what)
