"""The saga stack under Google's rate quotas (``LOCALCLOUD_QUOTAS``, ``localcloud.quotas``), on a stack of its
own: Google's defaults, except the Executions create (write) quota, cut to 10 per 5 s so that a burst
over it fits in a test.

- Starting sagas makes no Executions *list* call, so the list quota (1,200 a minute per location) puts no
  bound on the start rate: only the create quota does.
- A burst of more starts than the create quota admits loses nothing: each refused create (429) releases
  its start claim and fails the delivery, Pub/Sub redelivers it after the trigger's backoff (10 s, then
  20 s), and every saga starts once and publishes exactly one result.

The sweeper is not run on this stack: it lists ended executions once a period (a minute on Google Cloud,
5 s locally), and here every list call counted must be a start's.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from devstack.settings import DeploymentSettings
from devstack.stack import LocalStack, missing_components
from localcloud.quotas import EXECUTIONS_CREATE, EXECUTIONS_LIST
from tests.e2e.results import ResultListener

pytestmark = pytest.mark.e2e

QUOTAS = "google,workflows.executions.create=10/5s"
# Refused starts come back after the trigger's backoff: 10 s, then 20 s more.
RESULT_TIMEOUT = 45.0


@pytest.fixture(scope="module")
def quota_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    assert missing_components() == [], "the local stack is not complete in this checkout"
    log_dir: Path = tmp_path_factory.mktemp("e2e-quota-logs")
    running = LocalStack.launch(
        settings=DeploymentSettings.load(), log_dir=log_dir, ready_timeout=90.0, quotas=QUOTAS
    )
    try:
        assert running.sweep_timer is not None
        running.sweep_timer.stop()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def quota_results(quota_stack: LocalStack) -> Iterator[ResultListener]:
    listener = ResultListener(quota_stack)
    try:
        yield listener
    finally:
        listener.close()


def usage(stack: LocalStack, quota: str) -> dict[str, Any]:
    """The calls admitted and refused of ``quota`` for the stack's project and location."""
    key = f"{stack.settings.project_id}/{stack.settings.location}"
    found: dict[str, Any] = stack.quota_report()["usage"].get(quota, {}).get(key, {})
    return {"calls": found.get("calls", 0), "refused": found.get("refused", 0)}


def publish_burst(stack: LocalStack, prefix: str, count: int) -> list[str]:
    """``count`` saga requests published at once; their saga ids."""
    saga_ids = [f"{prefix}-{uuid.uuid4().hex[:10]}" for _ in range(count)]
    requests = [stack.example_request("trip-succeeds", saga_id=saga_id) for saga_id in saga_ids]
    with ThreadPoolExecutor(max_workers=count) as pool:
        list(pool.map(stack.publish_request, requests))
    return saga_ids


def one_result_each(results: ResultListener, saga_ids: list[str], stack: LocalStack) -> None:
    for saga_id in saga_ids:
        result = results.wait(saga_id, RESULT_TIMEOUT)
        assert result is not None, f"no result for {saga_id} (logs: {stack.log_dir})"
        assert result.data["status"] == "succeeded", result.data
    assert {saga_id: len(results.events(saga_id)) for saga_id in saga_ids} == dict.fromkeys(saga_ids, 1)


def test_the_quotas_in_force_are_googles_with_the_create_quota_cut(quota_stack: LocalStack) -> None:
    limits = quota_stack.quota_report()["limits"]
    assert limits[EXECUTIONS_CREATE] == "10/5s"
    assert limits[EXECUTIONS_LIST] == "1200/min"
    assert limits["tasks.dispatches"] == "500/s"


def test_starting_sagas_makes_no_executions_list_call_so_the_list_quota_never_bounds_starts(
    quota_stack: LocalStack, quota_results: ResultListener
) -> None:
    before = usage(quota_stack, EXECUTIONS_LIST)
    created = usage(quota_stack, EXECUTIONS_CREATE)
    saga_ids = publish_burst(quota_stack, "quota-list", 10)
    one_result_each(quota_results, saga_ids, quota_stack)
    assert usage(quota_stack, EXECUTIONS_LIST) == before  # not one list call, so not one list 429
    after = usage(quota_stack, EXECUTIONS_CREATE)
    assert after["calls"] - created["calls"] == len(saga_ids)


def test_a_burst_over_the_create_quota_starts_every_saga_once_and_loses_none(
    quota_stack: LocalStack, quota_results: ResultListener
) -> None:
    before = usage(quota_stack, EXECUTIONS_CREATE)
    saga_ids = publish_burst(quota_stack, "quota-burst", 20)
    one_result_each(quota_results, saga_ids, quota_stack)
    after = usage(quota_stack, EXECUTIONS_CREATE)
    assert after["refused"] > before["refused"], "the burst never met the create quota"
    assert after["calls"] - before["calls"] == len(saga_ids)  # one execution per saga, none twice
