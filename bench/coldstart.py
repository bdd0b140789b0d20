"""Cold start of each function, measured the way ``functions-framework`` starts it.

- Import: ``functions-framework`` imports itself (Flask, Werkzeug, CloudEvents, click) before it loads the
  function, then ``create_app`` loads ``functions/<name>/main.py`` and builds the Flask app. So each fresh
  interpreter first imports the framework's CLI module (timed apart: ``framework_import_ms``), then times
  ``functions_framework.create_app(target, source, signature_type)``: that is what the function's module
  adds to the start (``import_ms``; median of 3, wall and CPU). ``top_imports`` are the heaviest imports
  under ``create_app`` from ``python -X importtime``.
- First answer: from starting ``functions-framework`` (as the local runner does) to the answer to the
  function's first real request, which the function itself handles: a Cloud Task attempt that calls a
  participant and reports to a callback (step_executor), a valid saga request in a binary-mode
  ``messagePublished`` CloudEvent that starts a one-step saga (start_saga), a saga result that is
  published (saga_completion). Participant and callback are a small HTTP server in this process. Wall
  time and the CPU time of the function's process group up to the answer.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, group_cpu_seconds
from devstack.processes import FUNCTION_SIGNATURES, child_environment, free_ports, function_spec

RUNS = 3

IMPORT_SCRIPT = """
import sys, time
wall, cpu = time.perf_counter(), time.process_time()
import functions_framework._cli
import functions_framework
framework = (time.perf_counter() - wall, time.process_time() - cpu)
print("MARK", file=sys.stderr, flush=True)
wall, cpu = time.perf_counter(), time.process_time()
functions_framework.create_app(sys.argv[1], sys.argv[2], sys.argv[3])
print(*framework, time.perf_counter() - wall, time.process_time() - cpu)
"""


def _run_import(
    name: str, env: Mapping[str, str], root: Path, *flags: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            *flags,
            "-c",
            IMPORT_SCRIPT,
            name,
            f"functions/{name}/main.py",
            FUNCTION_SIGNATURES[name],
        ],
        cwd=root,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def _import_seconds(name: str, env: Mapping[str, str], root: Path) -> tuple[float, float, float, float]:
    """(framework wall, framework CPU, create_app wall, create_app CPU) in seconds, one fresh interpreter."""
    out = _run_import(name, env, root)
    framework_wall, framework_cpu, wall, cpu = (float(x) for x in out.stdout.split()[-4:])
    return framework_wall, framework_cpu, wall, cpu


def _top_imports(name: str, env: Mapping[str, str], root: Path, count: int = 8) -> list[dict[str, Any]]:
    """The heaviest imports made while ``create_app`` loads the function (up to depth 2 below it)."""
    out = _run_import(name, env, root, "-X", "importtime")
    _, _, after = out.stderr.partition("MARK\n")
    rows = []
    for line in after.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, _, rest = line.partition(":")
        parts = rest.split("|")
        if len(parts) != 3:
            continue
        module = parts[2].rstrip()
        depth = (len(module) - len(module.lstrip()) - 1) // 2
        if depth > 2:
            continue
        rows.append(
            {"module": module.strip(), "depth": depth, "cumulative_ms": round(int(parts[1]) / 1000.0, 1)}
        )
    rows.sort(key=lambda r: -float(str(r["cumulative_ms"])))
    return rows[:count]


class _Echo(BaseHTTPRequestHandler):
    """Participant and callback endpoint: 200 with a small JSON body for every POST."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"ok":true}'
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        self.wfile.write(head.encode("ascii") + body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextlib.contextmanager
def _echo_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


_JSON = {"Content-Type": "application/json"}


def _task(tag: str, echo_url: str) -> dict[str, Any]:
    """A Cloud Tasks body for ``step_executor``: one OIDC call to the echo server, then its callback."""
    return {
        "saga_id": tag,
        "execution_id": tag,
        "step_index": 0,
        "step_name": "ping",
        "action": "execute",
        "call": {
            "url": f"{echo_url}/ping",
            "method": "POST",
            "payload": {"hello": "world"},
            "headers": {},
            "secret_headers": {},
            "auth": "oidc",
            "timeout_seconds": 10,
            "max_attempts": 1,
        },
        "callback_url": f"{echo_url}/callback",
        "outputs": {},
    }


def _saga_result(tag: str, execution: str) -> dict[str, Any]:
    """A succeeded one-step saga result for ``saga_completion`` to publish."""
    now = _now()
    action = {"status": "succeeded", "attempts": 1, "output": {}, "error": None}
    return {
        "saga_id": tag,
        "status": "succeeded",
        "execution": execution,
        "failed_step": None,
        "reason": None,
        "steps": [
            {
                "name": "ping",
                "status": "succeeded",
                "execute": {**action, "started_at": now, "finished_at": now},
                "compensate": None,
            }
        ],
        "started_at": now,
        "finished_at": now,
        "metadata": {},
    }


def _saga_request_event(tag: str, topic: str, project: str, echo_url: str) -> tuple[dict[str, str], bytes]:
    """A Pub/Sub CloudEvent (binary mode) carrying a one-step saga request, for ``start_saga``."""
    request = {"saga_id": tag, "steps": [{"name": "ping", "execute": {"url": f"{echo_url}/ping"}}]}
    data = {
        "message": {
            "data": base64.b64encode(json.dumps(request).encode()).decode(),
            "messageId": tag,
            "publishTime": _now(),
            "attributes": {},
        },
        "subscription": f"projects/{project}/subscriptions/coldstart",
    }
    headers = {
        **_JSON,
        "ce-specversion": "1.0",
        "ce-id": tag,
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-source": f"//pubsub.googleapis.com/{topic}",
    }
    return headers, json.dumps(data).encode()


def first_request(name: str, env: Mapping[str, str], echo_url: str) -> tuple[str, dict[str, str], bytes]:
    """(description, headers, body) of a first request that ``name`` handles end to end."""
    tag = f"coldstart-{secrets.token_hex(6)}"
    project = env.get("SAGA_PROJECT_ID") or "local-project"
    location = env.get("SAGA_LOCATION") or "us-central1"
    workflow = env.get("SAGA_WORKFLOW") or "saga-orchestrator"
    if name == "step_executor":
        body = json.dumps(_task(tag, echo_url)).encode()
        return "task: OIDC participant call + callback", dict(_JSON), body
    if name == "saga_completion":
        execution = f"projects/{project}/locations/{location}/workflows/{workflow}/executions/{tag}"
        body = json.dumps(_saga_result(tag, execution)).encode()
        return "saga result: published", dict(_JSON), body
    topic = f"projects/{project}/topics/{env.get('SAGA_REQUEST_TOPIC') or 'saga-requests'}"
    headers, body = _saga_request_event(tag, topic, project, echo_url)
    return "valid request: one execution started", headers, body


def _first_answer(
    name: str, env: Mapping[str, str], root: Path, echo_url: str, timeout: float = 60.0
) -> dict[str, Any]:
    (port,) = free_ports(1)
    spec = function_spec(name, port, env)
    described, headers, body = first_request(name, env, echo_url)
    started = time.monotonic()
    process = subprocess.Popen(
        list(spec.argv),
        cwd=root,
        env=dict(spec.env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        while time.monotonic() - started < timeout:
            request = urllib.request.Request(url, data=body, method="POST", headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    status = response.status
            except urllib.error.HTTPError as error:
                status = error.code
            except (urllib.error.URLError, ConnectionError) as error:
                if isinstance(error, urllib.error.URLError) and not isinstance(error.reason, ConnectionError):
                    raise
                time.sleep(0.005)
                continue
            wall = time.monotonic() - started
            cpu = group_cpu_seconds([process.pid])[process.pid]
            return {
                "first_answer_ms": round(wall * 1000, 1),
                "first_answer_cpu_ms": round(cpu * 1000, 1),
                "first_answer_status": status,
                "first_request": described,
            }
        raise TimeoutError(f"{name} did not answer within {timeout:g} s")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def run(function_env: Mapping[str, str], *, root: Path = REPO_ROOT) -> dict[str, Any]:
    """``function_env``: the functions' environment (the running local stack's); ``root``: the tree whose
    ``functions/`` and ``shared/`` are measured (the repository)."""
    env = child_environment(function_env)
    out: dict[str, Any] = {}
    with _echo_server() as echo_url:
        for name in FUNCTION_SIGNATURES:
            runs = [_import_seconds(name, env, root) for _ in range(RUNS)]
            out[name] = {
                "import_ms_median_of_3": round(statistics.median(r[2] for r in runs) * 1000, 1),
                "import_cpu_ms_median_of_3": round(statistics.median(r[3] for r in runs) * 1000, 1),
                "framework_import_ms_median_of_3": round(statistics.median(r[0] for r in runs) * 1000, 1),
                "framework_import_cpu_ms_median_of_3": round(statistics.median(r[1] for r in runs) * 1000, 1),
                **_first_answer(name, function_env, root, echo_url),
                "top_imports": _top_imports(name, env, root),
            }
    return out
