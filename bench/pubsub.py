"""The Pub/Sub emulator alone (``python -m localcloud.pubsub``, its own process) with the real client, in three
processes as a deployment would run them: the emulator, a ``PublisherClient`` (this process) and a
``SubscriberClient`` streaming pull (a child process), so neither client shares a GIL with the other side.

Every message is 1 KB and carries its index, so the subscriber counts each one once and reports duplicates;
lost = published − distinct received. Figures:

- ``sustained`` (the headline): at most ``max_ahead`` messages published beyond those received; end to end
  is distinct messages received and acked per second from the first publish to the last ack call;
- ``publish_only``: messages published per second (every future resolved) to a topic whose subscription
  has no consumer, which leaves a backlog;
- ``backlog``: a subscriber that attaches to that backlog, messages received and acked per second.

The subscriber runs its callback with ``InlineScheduler`` (see there); ``default_scheduler`` repeats the
sustained run with the client's default thread pool. CPU time is reported per process and message, and
``cpu_bound_per_second`` is what the machine's cores would sustain at that cost with nothing else running.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.sharedctypes import Synchronized
from typing import Any

from google.cloud.pubsub_v1.subscriber.scheduler import Scheduler, ThreadScheduler
from google.cloud.pubsub_v1.types import BatchSettings, FlowControl

from bench.common import REPO_ROOT, group_cpu_seconds
from bench.profile import Sampler
from devstack.processes import free_ports

MESSAGE_BYTES = 1024
INDEX_DIGITS = 10
# Client settings (documented knobs of the real client): publish batches of up to 1,000 messages (the API's
# limit per request) collected for at most 50 ms (default 10 ms: five times the requests for the same
# messages); a subscriber may hold 5,000 messages at once.
BATCH = BatchSettings(max_messages=1000, max_bytes=9 * 1000 * 1000, max_latency=0.05)
FLOW = FlowControl(max_messages=5000, max_bytes=64 * 1024 * 1024)


class InlineScheduler(Scheduler):
    """Runs each callback on the client thread that releases the message (the callback here only acks and
    counts), instead of handing every message to a thread pool: ``Scheduler`` is the client's documented
    extension point for how callbacks run."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()

    @property
    def queue(self) -> queue.Queue[Any]:
        return self._queue

    def schedule(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        callback(*args, **kwargs)

    def shutdown(self, await_msg_callbacks: bool = False) -> list[Any]:
        return []


def _scheduler(kind: str) -> Scheduler:
    """``inline``: ``InlineScheduler``; ``threads``: the client's default (``ThreadScheduler``, 10 threads)."""
    return InlineScheduler() if kind == "inline" else ThreadScheduler()


def _channel(address: str) -> Any:
    import grpc

    # the options the client's own transport sets on the channels it creates
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    return grpc.insecure_channel(address, options=options)


def _publisher(address: str) -> Any:
    from google.cloud import pubsub_v1
    from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

    return pubsub_v1.PublisherClient(
        batch_settings=BATCH, transport=PublisherGrpcTransport(channel=_channel(address))
    )


def _subscriber(address: str) -> Any:
    from google.cloud import pubsub_v1
    from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

    return pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=_channel(address)))


def _payload(index: int) -> bytes:
    return b"%0*d" % (INDEX_DIGITS, index) + b"x" * (MESSAGE_BYTES - INDEX_DIGITS)


def _subscribe(
    address: str,
    subscription: str,
    count: int,
    received: Synchronized[int],
    ready: Any,
    results: Any,
    timeout: float,
    scheduler: str,
) -> None:
    """The subscriber process: ack every message, count distinct ones and duplicates."""
    subscriber = _subscriber(address)
    seen = bytearray(count)
    lock = threading.Lock()
    done = threading.Event()
    tally = {"distinct": 0, "duplicates": 0, "unknown": 0, "first": 0.0, "last": 0.0}

    def on_message(message: Any) -> None:
        message.ack()
        index = int(message.data[:INDEX_DIGITS])
        with lock:
            if not 0 <= index < count:
                tally["unknown"] += 1
            elif seen[index]:
                tally["duplicates"] += 1
            else:
                seen[index] = 1
                tally["distinct"] += 1
                now = time.monotonic()
                if tally["distinct"] == 1:
                    tally["first"] = now
                tally["last"] = now
                received.value = int(tally["distinct"])
                if tally["distinct"] >= count:
                    done.set()

    cpu_before = time.process_time()
    future = subscriber.subscribe(
        subscription, on_message, flow_control=FLOW, scheduler=_scheduler(scheduler)
    )
    ready.set()
    done.wait(timeout)
    cpu = time.process_time() - cpu_before
    future.cancel()
    with contextlib.suppress(Exception):  # a cancelled stream ends with CancelledError
        future.result(timeout=10)
    subscriber.close()
    results.put({**tally, "cpu_seconds": cpu})


class _Subscriber:
    def __init__(self, address: str, subscription: str, count: int, timeout: float, scheduler: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.received = context.RawValue("q", 0)
        ready = context.Event()
        self._results = context.Queue()
        self.process = context.Process(
            target=_subscribe,
            args=(address, subscription, count, self.received, ready, self._results, timeout, scheduler),
            daemon=True,
        )
        self.process.start()
        if not ready.wait(60):
            raise RuntimeError("the subscriber process did not start")

    def result(self, timeout: float) -> dict[str, Any]:
        try:
            out: dict[str, Any] = self._results.get(timeout=timeout)
            return out
        finally:
            self.process.join(20)
            if self.process.is_alive():
                self.process.kill()


def _rates(count: int, started: float, published_at: float, sub: dict[str, Any]) -> dict[str, Any]:
    distinct = int(sub["distinct"])
    end_to_end = (sub["last"] - started) if distinct else float("inf")
    return {
        "messages": count,
        "message_bytes": MESSAGE_BYTES,
        "publish_per_second": round(count / (published_at - started)),
        "received": distinct,
        "lost": count - distinct,
        "duplicates": sub["duplicates"] + sub["unknown"],
        "end_to_end_per_second": round(distinct / end_to_end),
        "end_to_end_seconds": round(end_to_end, 2),
    }


def _sustained(
    address: str,
    count: int,
    ahead: int,
    pid: int,
    profile_seconds: int,
    scheduler: str = "inline",
    label: str = "",
) -> dict[str, Any]:
    publisher = _publisher(address)
    topic = f"projects/local-project/topics/bench-sustained-{scheduler}{label}"
    subscription = f"projects/local-project/subscriptions/bench-sustained-{scheduler}{label}"
    publisher.create_topic(request={"name": topic})
    _subscriber(address).create_subscription(request={"name": subscription, "topic": topic})
    payloads = [_payload(index) for index in range(count)]
    subscriber = _Subscriber(address, subscription, count, 120, scheduler)
    cpu_before = group_cpu_seconds([pid])[pid]
    client_before = time.process_time()
    sampler = Sampler(pid, profile_seconds) if profile_seconds else None
    received = subscriber.received
    started = time.monotonic()
    futures = []
    for index, payload in enumerate(payloads):
        while index - received.value >= ahead:
            time.sleep(0.0005)
        futures.append(publisher.publish(topic, payload))
    for published in futures:
        published.result(timeout=120)
    published_at = time.monotonic()
    publisher_cpu = time.process_time() - client_before
    sub = subscriber.result(timeout=400)
    emulator_cpu = group_cpu_seconds([pid])[pid] - cpu_before
    publisher.stop()
    out = _rates(count, started, published_at, sub)
    distinct = max(1, out["received"])
    return {
        **out,
        "max_ahead": ahead,
        "scheduler": scheduler,
        "emulator_cpu_ms_per_message": round(1000 * emulator_cpu / distinct, 3),
        "publisher_cpu_ms_per_message": round(1000 * publisher_cpu / distinct, 3),
        "subscriber_cpu_ms_per_message": round(1000 * sub["cpu_seconds"] / distinct, 3),
        "client_cpu_ms_per_message": round(1000 * (publisher_cpu + sub["cpu_seconds"]) / distinct, 3),
        "cpu_bound_per_second": round(
            (os.cpu_count() or 1) * distinct / (emulator_cpu + publisher_cpu + sub["cpu_seconds"])
        ),
        "emulator_profile": sampler.join() if sampler is not None else None,
    }


def _backlog(address: str, count: int, pid: int, scheduler: str = "inline") -> dict[str, Any]:
    """Publish ``count`` messages with no consumer attached, then drain them with a streaming pull."""
    publisher = _publisher(address)
    topic = "projects/local-project/topics/bench-backlog"
    subscription = "projects/local-project/subscriptions/bench-backlog"
    publisher.create_topic(request={"name": topic})
    _subscriber(address).create_subscription(request={"name": subscription, "topic": topic})
    payloads = [_payload(index) for index in range(count)]
    cpu_before = group_cpu_seconds([pid])[pid]
    client_before = time.process_time()
    started = time.monotonic()
    futures = [publisher.publish(topic, payload) for payload in payloads]
    for published in futures:
        published.result(timeout=120)
    published_at = time.monotonic()
    publish_cpu = group_cpu_seconds([pid])[pid] - cpu_before
    publisher_cpu = time.process_time() - client_before
    subscriber = _Subscriber(address, subscription, count, 120, scheduler)
    cpu_before = group_cpu_seconds([pid])[pid]
    sub = subscriber.result(timeout=400)
    drain_cpu = group_cpu_seconds([pid])[pid] - cpu_before
    publisher.stop()
    distinct = int(sub["distinct"])
    drain_seconds = (sub["last"] - sub["first"]) if distinct > 1 else float("inf")
    return {
        "messages": count,
        "message_bytes": MESSAGE_BYTES,
        "publish_only_per_second": round(count / (published_at - started)),
        "publish_emulator_cpu_ms_per_message": round(1000 * publish_cpu / count, 3),
        "publisher_cpu_ms_per_message": round(1000 * publisher_cpu / count, 3),
        "received": distinct,
        "lost": count - distinct,
        "duplicates": sub["duplicates"] + sub["unknown"],
        "drain_per_second": round(distinct / drain_seconds),
        "drain_emulator_cpu_ms_per_message": round(1000 * drain_cpu / max(1, distinct), 3),
        "subscriber_cpu_ms_per_message": round(1000 * sub["cpu_seconds"] / max(1, distinct), 3),
    }


def run(*, quick: bool) -> dict[str, Any]:
    """``sustained``: at most 2,000 messages in flight (the headline figure), then the same again with the
    emulator profiled (``profiled_run``); full run only: the same with the default scheduler, and
    ``backlog``: 20,000 published with no consumer, then drained."""
    (port,) = free_ports(1)
    address = f"127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "localcloud.pubsub", address],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert server.stdout is not None
        server.stdout.readline()  # "<name> ready: <address>"
        count = 10_000 if quick else 30_000
        out = _sustained(address, count, 2000, server.pid, 0)
        # py-spy takes CPU from the three processes on a small machine (measured: about 0.3 s of CPU while
        # it samples for 5 s), so the profile comes from a second run that is reported beside the headline
        profiled = _sustained(address, count, 2000, server.pid, 3 if quick else 5, label="-profiled")
        out["emulator_profile"] = profiled.pop("emulator_profile")
        out["profiled_run"] = profiled
        if not quick:
            out["default_scheduler"] = _sustained(address, count, 2000, server.pid, 0, "threads")
            out["backlog"] = _backlog(address, 20_000, server.pid)
        return out
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
