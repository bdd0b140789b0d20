"""The Executions API's rate quotas (``LOCALCLOUD_QUOTAS``) through the real ``ExecutionsClient``, on a manual
clock: a call over quota fails with ``ResourceExhausted`` (HTTP 429) and nothing is created; cancels count
against the write quota as creates do; ``/admin/quotas`` shows the calls admitted and refused."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from google.api_core import exceptions as gexc
from google.cloud.workflows import executions_v1

from localcloud.quotas import EXECUTIONS_CREATE, EXECUTIONS_GET, EXECUTIONS_LIST, QuotaConfig

from .conftest import LOCATION, PROJECT, needs_interpreter

pytestmark = needs_interpreter

PARKED = """
main:
  steps:
    - wait:
        call: sys.sleep
        args:
          seconds: 3600
"""
KEY = f"{PROJECT}/{LOCATION}"


def limit(engine: Any, text: str) -> None:
    """Set the engine's quotas as ``LOCALCLOUD_QUOTAS=text`` would have at start."""
    engine.ctx.quotas.config = QuotaConfig.parse(text)


def listed(engine: Any, workflow: Any) -> list[str]:
    pager = engine.executions.list_executions(
        request=executions_v1.ListExecutionsRequest(parent=workflow.name)
    )
    return [e.name for e in pager]


def test_creates_over_the_write_quota_are_refused_until_the_window_moves_on(manual_engine: Any) -> None:
    engine = manual_engine
    workflow = engine.deploy(PARKED)
    limit(engine, "workflows.executions.create=2/min")
    first = engine.execute(workflow).name
    engine.execute(workflow)
    with pytest.raises(gexc.ResourceExhausted) as refused:
        engine.execute(workflow)
    assert "Quota exceeded for quota metric 'Execution API write requests'" in str(refused.value.message)
    assert len(listed(engine, workflow)) == 2  # the refused call created nothing
    with pytest.raises(gexc.ResourceExhausted):
        engine.executions.cancel_execution(name=first)  # a cancel is a write too
    engine.advance(60)
    engine.executions.cancel_execution(name=first)
    engine.execute(workflow)
    assert len(listed(engine, workflow)) == 3


def test_lists_and_gets_have_quotas_of_their_own(manual_engine: Any) -> None:
    engine = manual_engine
    workflow = engine.deploy(PARKED)
    limit(engine, "workflows.executions.list=1/min,workflows.executions.get=1/min")
    name = engine.execute(workflow).name  # no create quota set: not limited
    listed(engine, workflow)
    with pytest.raises(gexc.ResourceExhausted, match="Execution API list requests"):
        listed(engine, workflow)
    engine.executions.get_execution(name=name)
    with pytest.raises(gexc.ResourceExhausted, match="Execution API get requests"):
        engine.executions.get_execution(name=name)


def test_the_admin_page_counts_calls_with_quotas_off(manual_engine: Any) -> None:
    engine = manual_engine
    workflow = engine.deploy(PARKED)
    engine.execute(workflow)
    listed(engine, workflow)
    listed(engine, workflow)
    report = requests.get(f"{engine.http}/admin/quotas", timeout=10).json()
    assert report["limits"] == {}
    assert report["usage"][EXECUTIONS_CREATE][KEY]["calls"] == 1
    assert report["usage"][EXECUTIONS_LIST][KEY] == {
        "limit": None,
        "unit": "requests",
        "calls": 2,
        "units": 2,
        "refused": 0,
    }
    assert EXECUTIONS_GET not in report["usage"]
