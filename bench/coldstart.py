"""Cold start of each function: the import time of its ``main.py`` in a fresh interpreter (with the top
cumulative imports from ``python -X importtime`` as the profile), and the time from starting
``functions-framework`` to its first answered request (a POST to ``/``; any HTTP status counts)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from bench.common import REPO_ROOT
from localcloud.runner.processes import FUNCTION_SIGNATURES, child_environment, free_ports, function_spec

IMPORT_SCRIPT = """
import importlib.util, sys, time
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("main", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(time.perf_counter() - started)
"""


def _import_seconds(name: str, env: Mapping[str, str]) -> float:
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_SCRIPT, f"functions/{name}/main.py"],
        cwd=REPO_ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def _top_imports(name: str, env: Mapping[str, str], count: int = 8) -> list[dict[str, Any]]:
    script = IMPORT_SCRIPT.replace("print(time.perf_counter() - started)", "")
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", script, f"functions/{name}/main.py"],
        cwd=REPO_ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = []
    for line in out.stderr.splitlines():
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


def _first_answer(name: str, env: Mapping[str, str], timeout: float = 60.0) -> tuple[float, int]:
    (port,) = free_ports(1)
    spec = function_spec(name, port, env)
    started = time.monotonic()
    process = subprocess.Popen(
        list(spec.argv),
        cwd=REPO_ROOT,
        env=dict(spec.env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        while time.monotonic() - started < timeout:
            request = urllib.request.Request(
                url, data=b"{}", method="POST", headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    return time.monotonic() - started, response.status
            except urllib.error.HTTPError as error:
                return time.monotonic() - started, error.code
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.005)
        raise TimeoutError(f"{name} did not answer within {timeout:g} s")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def run(function_env: Mapping[str, str]) -> dict[str, Any]:
    env = child_environment(function_env)
    out: dict[str, Any] = {}
    for name in FUNCTION_SIGNATURES:
        imports = sorted(_import_seconds(name, env) for _ in range(3))
        first, status = _first_answer(name, function_env)
        out[name] = {
            "import_ms_median_of_3": round(imports[1] * 1000, 1),
            "first_answer_ms": round(first * 1000, 1),
            "first_answer_status": status,
            "top_imports": _top_imports(name, env),
        }
    return out
