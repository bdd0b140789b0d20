"""Child processes of the runner: readiness with a deadline, and stop leaves nothing behind (checked with
``os.kill(pid, 0)``)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from devstack.processes import (
    ManagedProcess,
    ProcessError,
    ProcessSpec,
    _port_share,
    child_environment,
    free_ports,
    function_spec,
    group_members,
    parse_ready_line,
    participant_spec,
    port_is_free,
    start_all,
)
from devstack.settings import DEFAULT_PATH, DeploymentSettings
from tests.support.eventually import eventually

STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
print("grandchild", child.pid, flush=True)
time.sleep(600)
"""

POLITE = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print("grandchild", child.pid, flush=True)
time.sleep(600)
"""


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def spec(name: str, script: str, **ready: object) -> ProcessSpec:
    return ProcessSpec(name=name, argv=(sys.executable, "-c", script), env=child_environment({}), **ready)  # type: ignore[arg-type]


def test_stop_terminates_the_process_and_its_children() -> None:
    process = ManagedProcess.start(spec("polite", POLITE, ready_line="grandchild"))
    process.wait_ready(10)
    grandchild = int((process.ready_line or "").split()[1])
    assert not gone(process.pid) and not gone(grandchild)
    started = time.monotonic()
    process.stop(timeout=5)
    assert time.monotonic() - started < 5, "SIGTERM alone should have been enough"
    assert gone(process.pid) and gone(grandchild)


def test_stop_kills_a_group_that_ignores_sigterm_after_the_timeout() -> None:
    process = ManagedProcess.start(spec("stubborn", STUBBORN, ready_line="grandchild"))
    process.wait_ready(10)
    grandchild = int((process.ready_line or "").split()[1])
    started = time.monotonic()
    process.stop(timeout=0.5)
    assert time.monotonic() - started >= 0.5
    assert gone(process.pid) and gone(grandchild)
    process.stop()  # a second stop is a no-op


def test_a_process_that_dies_before_it_is_ready_is_reported_with_its_output() -> None:
    process = ManagedProcess.start(
        spec("crasher", "print('boom: no config'); raise SystemExit(3)", ready_url="http://127.0.0.1:9/")
    )
    with pytest.raises(ProcessError, match="exited with status 3") as caught:
        process.wait_ready(10)
    assert "boom: no config" in caught.value.output
    process.stop()


def test_readiness_has_a_deadline() -> None:
    (port,) = free_ports(1)
    process = ManagedProcess.start(
        spec("sleeper", "import time; time.sleep(600)", ready_address=f"127.0.0.1:{port}")
    )
    started = time.monotonic()
    with pytest.raises(ProcessError, match="did not become ready in time"):
        process.wait_ready(0.3)
    assert time.monotonic() - started < 5
    process.stop()
    assert gone(process.pid)


def test_start_all_stops_what_it_started_when_one_fails(tmp_path: Path) -> None:
    pid_file = tmp_path / "sleeper.pid"
    sleeper = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(600)"
    with pytest.raises(ProcessError, match="crasher"):
        start_all(
            [
                spec("sleeper", sleeper),
                spec(
                    "crasher",
                    "import time; time.sleep(0.5); raise SystemExit(1)",
                    ready_url="http://127.0.0.1:9/",
                ),
            ]
        )
    assert gone(int(pid_file.read_text()))


def test_a_participant_process_is_ready_when_its_health_answers(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    (process,) = start_all(
        [participant_spec("flight", port, certs_url="http://127.0.0.1:9/certs")], log_dir=tmp_path
    )
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_control/health", timeout=5) as response:
        assert json.loads(response.read())["service"] == "flight"
    process.stop()
    assert gone(process.pid)
    assert (
        f"participant flight ready on http://127.0.0.1:{port}"
        in (tmp_path / "participant-flight.log").read_text()
    )


def test_the_payment_participant_refuses_to_start_without_its_api_key() -> None:
    (port,) = free_ports(1)
    with pytest.raises(ProcessError) as caught:
        start_all([participant_spec("payment", port, certs_url="http://127.0.0.1:9/certs")])
    assert "PAYMENT_API_KEY" in caught.value.output


def test_all_participants_in_one_process_on_free_ports() -> None:
    process = ManagedProcess.start(
        ProcessSpec(
            name="all",
            argv=(sys.executable, "-m", "examples.participants", "--service", "all", "--port", "0"),
            env=child_environment({"PAYMENT_API_KEY": "k-123"}),
            ready_line="participant payment ready",
        )
    )
    try:
        process.wait_ready(20)
        lines = [line for line in process.output_tail().splitlines() if line.startswith("participant ")]
        assert [line.split()[1] for line in lines] == ["flight", "hotel", "payment"]
        assert "k-123" not in process.output_tail()
    finally:
        process.stop()


def test_children_get_no_google_credentials_nor_stray_settings_from_the_runner() -> None:
    base = {
        "PATH": "/usr/bin",
        "GOOGLE_APPLICATION_CREDENTIALS": "/home/me/key.json",
        "PUBSUB_EMULATOR_HOST": "10.0.0.1:8085",
        "SAGA_PROJECT_ID": "prod",
        "PAYMENT_API_KEY": "leak",
    }
    env = child_environment({"SAGA_PROJECT_ID": "local-project"}, base=base)
    assert env["PATH"] == "/usr/bin" and env["SAGA_PROJECT_ID"] == "local-project"
    assert not {"GOOGLE_APPLICATION_CREDENTIALS", "PUBSUB_EMULATOR_HOST", "PAYMENT_API_KEY"} & set(env)


def test_functions_run_under_functions_framework_as_deployed() -> None:
    function = function_spec("start_saga", 8081, {"SAGA_PROJECT_ID": "p"})
    assert function.argv[-10:] == (
        "--source",
        "functions/start_saga/main.py",
        "--target",
        "start_saga",
        "--signature-type",
        "cloudevent",
        "--host",
        "127.0.0.1",
        "--port",
        "8081",
    )
    assert function.argv[0].endswith("functions-framework") or function.argv[1:3] == (
        "-m",
        "functions_framework",
    )
    assert function.env["SAGA_PROJECT_ID"] == "p" and function.env["K_SERVICE"] == "start-saga"
    executor = function_spec("step_executor", 1, {}).argv
    assert executor[executor.index("--signature-type") + 1] == "http"


def test_the_ready_line_of_serve_gives_the_addresses() -> None:
    line = "localcloud ready: metadata=127.0.0.1:8089 pubsub=127.0.0.1:8085"
    assert parse_ready_line(line) == {"metadata": "127.0.0.1:8089", "pubsub": "127.0.0.1:8085"}


def test_a_function_runs_under_functions_framework_and_stops_with_its_workers(tmp_path: Path) -> None:
    if not (DEFAULT_PATH.parent / "functions" / "saga_completion" / "main.py").exists():
        pytest.skip("needs functions/saga_completion/main.py, not in this checkout yet")
    (port,) = free_ports(1)
    env = DeploymentSettings.load(DEFAULT_PATH, env={}).saga_env()
    (process,) = start_all([function_spec("saga_completion", port, env)], log_dir=tmp_path)
    members = [pid for pid, state, _ in group_members(process.pgid) if state != "Z"]
    assert len(members) >= 2, "gunicorn runs an arbiter and at least one worker"
    with pytest.raises(urllib.error.HTTPError) as answered:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/robots.txt", timeout=5)
    assert answered.value.code == 404
    process.stop()
    assert all(gone(pid) for pid in members)


RUNNER = """
import sys, time
from devstack.processes import ManagedProcess, ProcessSpec, child_environment
child = ManagedProcess.start(ProcessSpec(name="sleeper", argv=(sys.executable, "-c", "import time; time.sleep(600)"), env=child_environment({})))
print(child.pid, flush=True)
if sys.argv[1] == "wait":
    time.sleep(600)
"""


def _runner(mode: str) -> tuple[subprocess.Popen[str], int]:
    runner = subprocess.Popen(
        [sys.executable, "-c", RUNNER, mode], stdout=subprocess.PIPE, text=True, env=child_environment({})
    )
    assert runner.stdout is not None
    return runner, int(runner.stdout.readline())


def _eventually_gone(pid: int) -> bool:
    return eventually(lambda: gone(pid), timeout=10, every=0.05, what=f"process {pid} to be gone")


def test_children_are_stopped_when_the_runner_exits_without_stopping_them() -> None:
    runner, child = _runner("exit")
    assert runner.wait(timeout=20) == 0
    assert _eventually_gone(child)


def test_children_are_stopped_when_the_runner_gets_sigterm() -> None:
    runner, child = _runner("wait")
    assert not gone(child)
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=20) == 128 + signal.SIGTERM
    assert _eventually_gone(child)


def test_free_ports_are_distinct_free_outside_the_ephemeral_range_and_never_handed_out_twice() -> None:
    first, second = free_ports(8), free_ports(8)
    ports = first + second
    assert len(set(ports)) == 16
    assert all(port_is_free(port) for port in ports)
    low, high = _port_share()
    assert all(low <= port < high for port in ports)
    with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as handle:
        ephemeral_low = int(handle.read().split()[0])
    assert high <= max(ephemeral_low, 12_000)


def test_each_xdist_worker_draws_ports_from_its_own_share(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "3")
    shares = []
    for worker in ("gw0", "gw1", "gw2"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        shares.append(_port_share())
    assert shares[0][0] == 10_000
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(shares))
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    assert _port_share()[0] == 10_000 and _port_share()[1] >= shares[2][1]
