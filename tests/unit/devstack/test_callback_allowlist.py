from __future__ import annotations

from pathlib import Path

from saga_orchestrator.egress import host_error
from saga_orchestrator.settings import Settings

from devstack.settings import DeploymentSettings
from devstack.stack import LocalStack, StackPorts, with_callback_host


def test_the_callback_host_is_added_to_the_allowlist_once() -> None:
    assert with_callback_host("127.0.0.1:9001", "127.0.0.1:8787") == "127.0.0.1:9001,127.0.0.1:8787"
    assert with_callback_host("a.io, 127.0.0.1:8787", "127.0.0.1:8787") == "a.io,127.0.0.1:8787"
    assert with_callback_host("", "127.0.0.1:8787") == "127.0.0.1,localhost,127.0.0.1:8787"


def test_the_functions_may_report_to_the_local_workflows_engine_whatever_the_allowlist(
    tmp_path: Path,
) -> None:
    settings = DeploymentSettings.load(env={"SAGA_ALLOWED_HOSTS": "127.0.0.1:9001,127.0.0.1:9002"})
    stack = LocalStack(
        settings=settings,
        ports=StackPorts(workflows_http=48787, metadata=48089),
        log_dir=tmp_path,
        echo=None,
    )
    env = stack.function_environment()
    assert env["SAGA_ALLOWED_HOSTS"] == "127.0.0.1:9001,127.0.0.1:9002,127.0.0.1:48787"
    functions = Settings.from_env(env)
    callback = "http://127.0.0.1:48787/v1/projects/p/locations/l/workflows/w/executions/e/callbacks/c"
    assert host_error(callback, functions) is None
    assert host_error("http://127.0.0.1:9003/", functions) is not None
    assert host_error("http://127.0.0.1:48089/computeMetadata/v1/", functions) is not None


def test_the_local_sweeper_looks_back_two_of_its_periods_not_the_google_cloud_window(tmp_path: Path) -> None:
    settings = DeploymentSettings.load(env={"SAGA_SWEEP_SECONDS": "3", "SAGA_SWEEP_WINDOW_SECONDS": "660"})
    stack = LocalStack(settings=settings, ports=StackPorts(), log_dir=tmp_path, echo=None)
    assert stack.function_environment()["SAGA_SWEEP_WINDOW_SECONDS"] == "8"
