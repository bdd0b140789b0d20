from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import functions_framework
import pytest
from saga_orchestrator import runtime
from saga_orchestrator.clients import ClientFactory
from saga_orchestrator.settings import Settings

from tests.contract.cloud import LocalCloud, StaticTokenSource
from tests.support.http import RecordingHttpServer

ROOT = Path(__file__).parents[2]
PROJECT = "local-project"
RESULTS = f"projects/{PROJECT}/topics/saga-results"


@pytest.fixture
def local_cloud() -> Iterator[LocalCloud]:
    cloud = LocalCloud()
    yield cloud
    cloud.close()


@pytest.fixture
def function_env(local_cloud: LocalCloud) -> dict[str, str]:
    """What the deployed functions would see (deployment.env defaults + the emulator addresses)."""
    return {**local_cloud.env, "SAGA_PROJECT_ID": PROJECT, "GCE_METADATA_HOST": "127.0.0.1:8089"}


@pytest.fixture
def workflow_path(function_env: dict[str, str]) -> str:
    return Settings.from_env(function_env).workflow_path


@pytest.fixture
def tokens() -> StaticTokenSource:
    return StaticTokenSource(id_token="participant-id-token", access_token="callback-access-token")


@pytest.fixture
def installed_runtime(
    function_env: dict[str, str], tokens: StaticTokenSource
) -> Iterator[runtime.FunctionRuntime]:
    """The documented seam: the functions use this runtime (real clients, real gRPC to the emulators)."""
    clients = ClientFactory(function_env, tokens=tokens)
    rt = runtime.FunctionRuntime(function_env, clients)
    runtime.set_runtime_for_testing(rt)
    yield rt
    runtime.set_runtime_for_testing(None)
    clients.close()


@pytest.fixture
def make_client(installed_runtime: runtime.FunctionRuntime) -> Iterator[Callable[[str, str], Any]]:
    saved = os.environ.get("FUNCTION_SIGNATURE_TYPE")

    def make(target: str, signature_type: str) -> Any:
        app = functions_framework.create_app(
            target, str(ROOT / "functions" / target / "main.py"), signature_type
        )
        return app.test_client()

    yield make
    # create_app() writes FUNCTION_SIGNATURE_TYPE into the process environment.
    if saved is None:
        os.environ.pop("FUNCTION_SIGNATURE_TYPE", None)
    else:
        os.environ["FUNCTION_SIGNATURE_TYPE"] = saved


@pytest.fixture
def participant() -> Iterator[RecordingHttpServer]:
    with RecordingHttpServer() as server:
        yield server


@pytest.fixture
def callback() -> Iterator[RecordingHttpServer]:
    with RecordingHttpServer() as server:
        yield server
