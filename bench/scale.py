"""10,000 executions parked on callbacks at once, in a Workflows service of their own (a subprocess, so
its peak resident memory, VmHWM, is the engine's alone): time to park them all, then time to drain them
when their callbacks arrive, both with the real clients (Executions over gRPC, callbacks over HTTP)."""

from __future__ import annotations

import asyncio
import datetime
import json
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

import aiohttp
from saga_orchestrator.clients import ClientFactory

from bench.common import REPO_ROOT, peak_rss_mb

WORKFLOW = """
main:
  steps:
    - create:
        call: events.create_callback_endpoint
        args:
          http_callback_method: POST
        result: callback
    - announce:
        call: sys.log
        args:
          text: ${callback.url}
    - wait:
        call: events.await_callback
        args:
          callback: ${callback}
          timeout: 3600
        result: delivered
    - done:
        return: ${delivered.http_request.body}
"""


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def _admin(http: str, state: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"http://{http}/admin/executions?state={state}", timeout=60) as response:
        executions: list[dict[str, Any]] = json.loads(response.read())["executions"]
    return executions


def _epoch(rfc3339: str) -> float:
    return datetime.datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


async def _deliver(urls: list[str], token: str, concurrency: int) -> list[int]:
    statuses: list[int] = []
    queue = list(reversed(urls))
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while queue:
                url = queue.pop()
                async with session.post(url, json={"ok": True}, headers=headers) as response:
                    await response.read()
                    statuses.append(response.status)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


class _Announcements:
    """The callback URLs the parked executions log: ``LOG <url>`` lines on the server's stdout."""

    def __init__(self, stdout: IO[str]) -> None:
        self.urls: list[str] = []
        self._announced = threading.Condition()
        threading.Thread(target=self._read, args=(stdout,), daemon=True).start()

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            if line.startswith("LOG "):
                with self._announced:
                    self.urls.append(line[4:].strip())
                    self._announced.notify_all()

    def wait_for(self, count: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        with self._announced:
            while len(self.urls) < count and time.monotonic() < deadline:
                self._announced.wait(1.0)


def _start_executions(grpc: str, count: int) -> tuple[float, float]:
    """Deploy the parking workflow and start ``count`` executions: when they started, and how long it took."""
    factory = ClientFactory({"WORKFLOWS_EMULATOR_HOST": grpc})
    parent = "projects/local-project/locations/us-central1"
    workflows = factory.workflows()
    workflows.create_workflow(
        request={"parent": parent, "workflow_id": "bench-park", "workflow": {"source_contents": WORKFLOW}}
    ).result(timeout=60)
    executions = factory.executions()
    workflow = f"{parent}/workflows/bench-park"

    def start(_: int) -> None:
        executions.create_execution(request={"parent": workflow, "execution": {}})

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(start, range(count)))
    return started, time.monotonic() - started


def _await_succeeded(http: str, count: int, seconds: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + seconds
    succeeded: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        succeeded = _admin(http, "SUCCEEDED")
        if len(succeeded) >= count:
            break
        time.sleep(0.5)
    return succeeded


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run(count: int = 10_000) -> dict[str, Any]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench._workflows_server"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline())
        announcements = _Announcements(process.stdout)
        baseline_rss = _rss_mb(process.pid)
        started, created = _start_executions(ready["grpc"], count)
        announcements.wait_for(count, 300)
        parked_at = time.monotonic()
        waiting = [
            e for e in _admin(ready["http"], "ACTIVE") if (e.get("currentStep") or {}).get("step") == "wait"
        ]
        parked_rss = _rss_mb(process.pid)
        drain_started_wall = time.time()
        drain_started = time.monotonic()
        statuses = asyncio.run(_deliver(list(announcements.urls), ready["token"], concurrency=64))
        delivered = time.monotonic() - drain_started
        succeeded = _await_succeeded(ready["http"], count, 300)
        last_end = max((_epoch(e["endTime"]) for e in succeeded if e.get("endTime")), default=time.time())
        drain_seconds = max(last_end - drain_started_wall, delivered)
        peak = peak_rss_mb(process.pid)
        return {
            "executions": count,
            "create_seconds": round(created, 2),
            "park_seconds": round(parked_at - started, 2),
            "parked_confirmed": len(waiting),
            "drain_seconds": round(drain_seconds, 2),
            "drain_per_second": round(count / drain_seconds, 1) if drain_seconds > 0 else None,
            "callbacks_accepted": sum(1 for s in statuses if s == 200),
            "succeeded": len(succeeded),
            "rss_mb_idle": round(baseline_rss, 1),
            "rss_mb_parked": round(parked_rss, 1),
            "peak_rss_mb": round(peak, 1),
            "per_parked_execution_kb": round((parked_rss - baseline_rss) * 1024 / count, 1),
        }
    finally:
        _stop(process)
