"""The Pub/Sub emulator alone (``python -m localcloud.pubsub``, its own process) with the real client: 1 KB
messages published in batches while a streaming-pull subscriber receives and acks them; end to end is
messages received and acked per second from the first publish to the last receipt."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Any

from google.cloud.pubsub_v1.types import FlowControl
from saga_orchestrator.clients import ClientFactory

from bench.common import REPO_ROOT, group_cpu_seconds
from bench.profile import Sampler
from localcloud.runner.processes import free_ports


def _measure(factory: ClientFactory, name: str, count: int, ahead: int | None, pid: int) -> dict[str, Any]:
    """Publish ``count`` 1 KB messages, at most ``ahead`` more than received so far (None: all at once),
    while a streaming pull receives and acks them."""
    publisher = factory.publisher()
    subscriber = factory.subscriber()
    topic = f"projects/local-project/topics/{name}"
    subscription = f"projects/local-project/subscriptions/{name}"
    publisher.create_topic(request={"name": topic})
    subscriber.create_subscription(request={"name": subscription, "topic": topic})
    payload = b"x" * 1024
    received = 0
    done = threading.Event()
    progress = threading.Condition()

    def on_message(message: Any) -> None:
        nonlocal received
        message.ack()
        with progress:
            received += 1
            progress.notify_all()
            if received >= count:
                done.set()

    flow = FlowControl(max_messages=5000, max_bytes=64 * 1024 * 1024)
    future = subscriber.subscribe(subscription, on_message, flow_control=flow)
    cpu_before = group_cpu_seconds([pid])[pid]
    client_before = time.process_time()
    sampler = Sampler(pid, 5)
    started = time.monotonic()
    futures = []
    for sent in range(count):
        if ahead is not None:
            with progress:
                while sent - received >= ahead and not done.is_set():
                    progress.wait(1.0)
        futures.append(publisher.publish(topic, payload))
    for published in futures:
        published.result(timeout=120)
    published_seconds = time.monotonic() - started
    done.wait(timeout=180)
    end_to_end = time.monotonic() - started
    cpu = group_cpu_seconds([pid])[pid] - cpu_before
    client_cpu = time.process_time() - client_before
    future.cancel()
    return {
        "messages": count,
        "message_bytes": len(payload),
        "max_ahead": ahead,
        "publish_per_second": round(count / published_seconds),
        "received": received,
        "end_to_end_per_second": round(received / end_to_end),
        "end_to_end_seconds": round(end_to_end, 2),
        "emulator_cpu_ms_per_message": round(1000 * cpu / max(1, received), 3),
        "client_cpu_ms_per_message": round(1000 * client_cpu / max(1, received), 3),
        "emulator_profile": sampler.join(),
    }


def run(*, quick: bool) -> dict[str, Any]:
    """``sustained``: at most 2,000 messages in flight (the headline figure); ``burst`` (full run only):
    20,000 published at once, so the subscription holds a large backlog."""
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
        factory = ClientFactory({"PUBSUB_EMULATOR_HOST": address})
        out = _measure(factory, "bench-sustained", 10_000 if quick else 30_000, 2000, server.pid)
        if not quick:
            out["burst"] = _measure(factory, "bench-burst", 20_000, None, server.pid)
        return out
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
