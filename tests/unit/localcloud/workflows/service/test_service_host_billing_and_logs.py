"""The execution host's billing split (internal vs external URLs), its log lines and its tokens."""

from __future__ import annotations

import json
import logging

import pytest

from localcloud.auth import TokenAuthority
from localcloud.clock import ManualClock
from localcloud.config import LocalCloudConfig
from localcloud.workflows.engine.host import ExecutionInfo
from localcloud.workflows.lang.errors import WorkflowError
from localcloud.workflows.service.callbacks import CallbackRegistry
from localcloud.workflows.service.connectors import Connectors
from localcloud.workflows.service.service_host import (
    HostServices,
    ServiceHost,
    internal_prefixes_from_env,
    is_internal_url,
)

EXECUTION = "projects/p/locations/l/workflows/w/executions/e1"


@pytest.mark.parametrize(
    ("url", "internal"),
    [
        ("https://cloudtasks.googleapis.com/v2/projects/p", True),
        ("https://step-executor-abc-uc.a.run.app/run", True),
        ("https://us-central1-p.cloudfunctions.net/step_executor", True),
        ("https://api.partner.example/book", False),
        ("https://googleapis.com.evil.example/x", False),
        ("http://127.0.0.1:8081/", True),
        ("http://127.0.0.1:9999/", False),
    ],
)
def test_calls_to_google_and_the_listed_local_functions_are_internal(url: str, internal: bool) -> None:
    prefixes = internal_prefixes_from_env(
        {"LOCALCLOUD_INTERNAL_URL_PREFIXES": "http://127.0.0.1:8081/, http://127.0.0.1:8082/"}
    )
    assert prefixes == ("http://127.0.0.1:8081/", "http://127.0.0.1:8082/")
    assert is_internal_url(url, prefixes) is internal


def make_host() -> tuple[ServiceHost, TokenAuthority, CallbackRegistry]:
    clock = ManualClock()
    authority = TokenAuthority(clock, key_size=1024)
    registry = CallbackRegistry(clock=clock)
    registry.open_execution(EXECUTION)
    services = HostServices(registry, Connectors(LocalCloudConfig.from_env({})), authority, clock)
    info = ExecutionInfo(
        execution_id="e1", workflow_id="w", service_account="runner@p.iam.gserviceaccount.com"
    )
    return ServiceHost(info, EXECUTION, services), authority, registry


def test_tokens_belong_to_the_workflow_service_account() -> None:
    host, authority, _ = make_host()
    record = authority.check_access_token(host.access_token())
    assert record is not None and record.service_account_email == "runner@p.iam.gserviceaccount.com"
    assert host.id_token("https://step.example").count(".") == 2


def test_log_writes_one_cloud_logging_json_line(caplog: pytest.LogCaptureFixture) -> None:
    host, _, _ = make_host()
    with caplog.at_level(logging.INFO, logger="localcloud.workflows.executions"):
        host.log("WARNING", {"message": "step failed", "step": "book_flight"})
        host.log("INFO", "plain text")
    first, second = (json.loads(r.getMessage()) for r in caplog.records)
    assert first["severity"] == "WARNING"
    assert first["message"] == "step failed" and first["step"] == "book_flight"
    assert first["logging.googleapis.com/labels"]["workflows.googleapis.com/execution_id"] == "e1"
    assert second["message"] == "plain text"


async def test_callback_methods_and_callback_ownership_are_checked() -> None:
    host, _, registry = make_host()
    with pytest.raises(WorkflowError) as bad_method:
        await host.create_callback_endpoint("FETCH")
    assert bad_method.value.tags == ["ValueError"]
    created = await host.create_callback_endpoint("get")
    assert registry.find_by_url(EXECUTION, created["url"]).method == "GET"  # type: ignore[union-attr]
    with pytest.raises(WorkflowError) as foreign:
        await host.await_callback({"url": created["url"].replace("/e1/", "/e2/")}, 1)
    assert foreign.value.tags == ["ValueError"]
    with pytest.raises(WorkflowError) as not_a_map:
        await host.await_callback("nope", 1)  # type: ignore[arg-type]
    assert not_a_map.value.tags == ["TypeError"]
