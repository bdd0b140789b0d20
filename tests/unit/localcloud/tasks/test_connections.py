"""Kept-alive dispatch connections: reused between attempts, never when idle too long or closed by the
target, so no attempt is lost to a connection the target already gave up."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from google.cloud import tasks_v2

from localcloud.tasks.dispatcher import KeepAliveConnector
from localcloud.tasks.server import CloudTasksService
from tests.support.eventually import eventually_async
from tests.support.http import RecordingHttpServer

PARENT = "projects/local-project/locations/us-central1"
QUEUE = f"{PARENT}/queues/saga-tasks"
Started = tuple[CloudTasksService, tasks_v2.CloudTasksAsyncClient]
Starter = Callable[..., Awaitable[Started]]


class ThreadedTarget:
    """A blocking HTTP/1.1 keep-alive server on its own threads, so it can close connections while the
    test's event loop is blocked and has not yet seen the close."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.client_ports: list[int] = []
        self._idle: dict[socket.socket, bool] = {}
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, peer = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn, peer[1]), daemon=True).start()

    def _serve(self, conn: socket.socket, port: int) -> None:
        buffer = b""
        with conn:
            for _ in range(1000):
                with self._lock:
                    self._idle[conn] = True
                while b"\r\n\r\n" not in buffer:
                    try:
                        chunk = conn.recv(65536)
                    except OSError:
                        chunk = b""
                    if not chunk:
                        with self._lock:
                            self._idle.pop(conn, None)
                        return
                    buffer += chunk
                with self._lock:
                    self._idle[conn] = False
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                buffer = buffer[length:]
                self.client_ports.append(port)
                with self._lock:
                    self._idle[conn] = True
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def close_idle(self) -> int:
        """Shut every idle connection down (the FIN is on its way when this returns)."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with self._lock:
                idle = [conn for conn, waiting in self._idle.items() if waiting]
            if idle:
                for conn in idle:
                    conn.shutdown(socket.SHUT_RDWR)
                return len(idle)
            time.sleep(0.001)
        raise AssertionError("no idle connection to close")

    def stop(self) -> None:
        self._listener.close()


@pytest.fixture
async def threaded_target() -> AsyncIterator[ThreadedTarget]:
    server = ThreadedTarget()
    yield server
    server.stop()


async def _dispatch_one(started: Started, target: RecordingHttpServer, path: str) -> None:
    """Create a task and wait until it is done: the target records a request before it answers, so
    the dispatcher has read the answer (and pooled the connection) only once the task is gone."""
    service, client = started
    count = len(target.requests)
    await client.create_task(
        parent=QUEUE, task=tasks_v2.Task(http_request=tasks_v2.HttpRequest(url=target.url(path)))
    )
    await eventually_async(
        lambda: len(target.requests) > count and not service.state.queues[QUEUE].tasks,
        what=f"the dispatch of {path}",
    )


async def test_consecutive_attempts_reuse_one_connection(live: Started, target: RecordingHttpServer) -> None:
    service, client = live
    await client.create_queue(parent=PARENT, queue=tasks_v2.Queue(name=QUEUE))
    for index in range(4):
        await _dispatch_one(live, target, f"/t{index}")
    assert len({r.client_port for r in target.requests}) == 1
    await eventually_async(lambda: not service.state.queues[QUEUE].tasks, what="every task done")


async def test_a_connection_idle_longer_than_the_reuse_limit_is_not_reused(
    start_tasks: Starter, target: RecordingHttpServer
) -> None:
    started = await start_tasks(idle_reuse_seconds=0.05)
    service, client = started
    await client.create_queue(parent=PARENT, queue=tasks_v2.Queue(name=QUEUE))
    await _dispatch_one(started, target, "/first")
    await asyncio.sleep(0.1)  # longer than the reuse limit: the pooled connection goes stale
    await _dispatch_one(started, target, "/second")
    first, second = target.requests
    assert first.client_port != second.client_port
    await eventually_async(lambda: not service.state.queues[QUEUE].tasks, what="both tasks done")
    assert second.headers["X-CloudTasks-TaskRetryCount"] == "0"


async def test_a_pooled_connection_the_target_closed_is_not_used(threaded_target: ThreadedTarget) -> None:
    connector = KeepAliveConnector()
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.post(threaded_target.url + "/one", data=b"1") as response:
            assert response.status == 200
            await response.read()
        # Blocks the event loop: the close reaches the socket, but the loop has not processed it.
        assert threaded_target.close_idle() == 1
        async with session.post(threaded_target.url + "/two", data=b"2") as response:
            assert response.status == 200
            await response.read()
        async with session.post(threaded_target.url + "/three", data=b"3") as response:
            assert response.status == 200
    assert connector.discarded == 1
    first, second, third = threaded_target.client_ports
    assert first != second == third


async def test_a_due_task_is_dispatched_without_the_clock_moving_and_low_rates_wait_for_no_token(
    manual: Started, manual_target: RecordingHttpServer
) -> None:
    service, client = manual
    queue = tasks_v2.Queue(
        name=QUEUE,
        rate_limits=tasks_v2.RateLimits(max_dispatches_per_second=500, max_concurrent_dispatches=200),
    )
    await client.create_queue(parent=PARENT, queue=queue)
    for index in range(5):
        await client.create_task(
            parent=QUEUE,
            task=tasks_v2.Task(http_request=tasks_v2.HttpRequest(url=manual_target.url(f"/t{index}"))),
        )
    await eventually_async(
        lambda: len(manual_target.requests) == 5, what="five dispatches at the same instant"
    )
    assert {r.at for r in manual_target.requests} == {manual_target.requests[0].at}
    await eventually_async(lambda: not service.state.queues[QUEUE].tasks, what="every task done")
