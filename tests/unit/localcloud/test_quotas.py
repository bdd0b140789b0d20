"""``LOCALCLOUD_QUOTAS`` parsing and the rolling-window limiter, on a manual clock (no sleeping)."""

from __future__ import annotations

import pytest
from google.api_core import exceptions as gexc

from localcloud.clock import ManualClock
from localcloud.config import LocalCloudConfig
from localcloud.quotas import (
    EXECUTIONS_CREATE,
    EXECUTIONS_LIST,
    PUBSUB_PUBLISH_KB,
    QUOTAS,
    TASKS_DISPATCHES,
    Limit,
    QuotaConfig,
    QuotaConfigError,
    QuotaExceededError,
    Quotas,
    google_defaults,
    location_key,
    parse_limit,
)
from localcloud.runtime import Context


def quotas(text: str, clock: ManualClock) -> Quotas:
    return Quotas(QuotaConfig.parse(text), clock)


# --- configuration -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "off", " off ", "google,off"])
def test_quotas_are_off_unless_asked_for(text: str) -> None:
    assert QuotaConfig.parse(text).limits == {}
    assert not QuotaConfig.parse(text).enforced


def test_google_sets_every_documented_default() -> None:
    limits = QuotaConfig.parse("google").limits
    assert limits == {
        EXECUTIONS_CREATE: Limit(6000, 60),
        EXECUTIONS_LIST: Limit(1200, 60),
        "workflows.executions.get": Limit(6000, 60),
        TASKS_DISPATCHES: Limit(500, 1),
        PUBSUB_PUBLISH_KB: Limit(12_000_000, 60),
    }
    assert set(limits) == set(QUOTAS)


def test_pubsub_throughput_is_lower_outside_the_large_regions() -> None:
    assert google_defaults("europe-west3")[PUBSUB_PUBLISH_KB] == Limit(3_000_000, 60)
    assert QuotaConfig.parse("google", "us-east1").limits[PUBSUB_PUBLISH_KB] == Limit(12_000_000, 60)


def test_overrides_apply_left_to_right_over_the_defaults() -> None:
    limits = QuotaConfig.parse("google, workflows.executions.create=30/min, tasks.dispatches=off").limits
    assert limits[EXECUTIONS_CREATE] == Limit(30, 60)
    assert limits[EXECUTIONS_LIST] == Limit(1200, 60)
    assert TASKS_DISPATCHES not in limits


def test_an_override_alone_limits_only_its_quota() -> None:
    assert QuotaConfig.parse("workflows.executions.list=1200/min").limits == {
        EXECUTIONS_LIST: Limit(1200, 60)
    }


@pytest.mark.parametrize(
    ("text", "limit"),
    [("600/min", Limit(600, 60)), ("10/5s", Limit(10, 5)), ("2.5/s", Limit(2.5, 1)), ("1/h", Limit(1, 3600))],
)
def test_a_limit_is_an_amount_per_window(text: str, limit: Limit) -> None:
    assert parse_limit(text) == limit


def test_limits_print_as_they_are_written() -> None:
    texts = ("600/min", "10/5s", "2.5/s", "1/h", "3/90s", "12000000/min")
    assert [str(parse_limit(t)) for t in texts] == list(texts)


def test_every_bad_item_is_reported_at_once() -> None:
    with pytest.raises(QuotaConfigError) as raised:
        QuotaConfig.parse(
            "google,workflows.execution.create=5/min,tasks.dispatches=0/s,pubsub.publish.kb=9/day,on"
        )
    problems = raised.value.problems
    assert len(problems) == 4
    assert "no quota 'workflows.execution.create'" in problems[0]
    assert all(name in str(raised.value) for name in QUOTAS)  # the known names, to correct a typo


def test_the_config_reads_the_variable_and_the_context_builds_the_quotas_on_its_clock() -> None:
    clock = ManualClock()
    config = LocalCloudConfig.from_env({"LOCALCLOUD_QUOTAS": "google"})
    context = Context(config=config, clock=clock)
    assert context.quotas is context.quotas  # one set of counters for every emulator of the process
    assert context.quotas.clock is clock
    assert context.quotas.describe()[EXECUTIONS_CREATE] == "6000/min"
    assert LocalCloudConfig.from_env({}).quotas == ""


# --- the limiter ---------------------------------------------------------------------------------------


async def test_calls_over_the_limit_are_refused_until_the_oldest_leaves_the_window() -> None:
    clock = ManualClock()
    limiter = quotas("workflows.executions.create=3/min", clock)
    for _ in range(3):
        limiter.charge(EXECUTIONS_CREATE, "p/l")
    with pytest.raises(QuotaExceededError):
        limiter.charge(EXECUTIONS_CREATE, "p/l")
    assert limiter.wait_seconds(EXECUTIONS_CREATE, "p/l") == 60
    await clock.advance(59.9)
    assert not limiter.try_charge(EXECUTIONS_CREATE, "p/l")
    await clock.advance(0.1)
    limiter.charge(EXECUTIONS_CREATE, "p/l")


async def test_the_window_rolls_rather_than_resetting_each_minute() -> None:
    clock = ManualClock()
    limiter = quotas("workflows.executions.list=3/min", clock)
    limiter.charge(EXECUTIONS_LIST, "p/l")
    await clock.advance(50)
    limiter.charge(EXECUTIONS_LIST, "p/l")
    limiter.charge(EXECUTIONS_LIST, "p/l")
    await clock.advance(11)  # a fixed minute would have reset: here only the first call has left
    assert limiter.try_charge(EXECUTIONS_LIST, "p/l")
    assert not limiter.try_charge(EXECUTIONS_LIST, "p/l")
    assert limiter.wait_seconds(EXECUTIONS_LIST, "p/l") == pytest.approx(49)


async def test_a_rate_held_just_under_the_quota_is_never_refused() -> None:
    clock = ManualClock()
    limiter = quotas("google", clock)
    refused = 0
    for _ in range(6000 * 3):  # three minutes at 99 calls a second
        refused += not limiter.try_charge(EXECUTIONS_CREATE, "p/l")
        await clock.advance(1 / 99)
    assert refused == 0


async def test_a_burst_over_the_quota_admits_exactly_the_quota() -> None:
    clock = ManualClock()
    limiter = quotas("google", clock)
    admitted = sum(limiter.try_charge(EXECUTIONS_CREATE, "p/l") for _ in range(7000))
    assert admitted == 6000


async def test_keys_are_counted_apart() -> None:
    clock = ManualClock()
    limiter = quotas("tasks.dispatches=1/s", clock)
    assert limiter.try_charge(TASKS_DISPATCHES, "queues/a")
    assert limiter.try_charge(TASKS_DISPATCHES, "queues/b")
    assert not limiter.try_charge(TASKS_DISPATCHES, "queues/a")


async def test_units_are_weighed_and_a_call_larger_than_the_quota_never_fits() -> None:
    clock = ManualClock()
    limiter = quotas("pubsub.publish.kb=10/s", clock)
    assert limiter.try_charge(PUBSUB_PUBLISH_KB, "p", 6.5)
    assert not limiter.try_charge(PUBSUB_PUBLISH_KB, "p", 4)
    assert limiter.try_charge(PUBSUB_PUBLISH_KB, "p", 3.5)
    assert limiter.wait_seconds(PUBSUB_PUBLISH_KB, "p", 11) == float("inf")
    assert Quotas(clock=clock).wait_seconds(PUBSUB_PUBLISH_KB, "p", 11) == 0  # off: always fits


def test_a_refusal_is_resource_exhausted_in_googles_words() -> None:
    limiter = quotas("workflows.executions.create=1/min", ManualClock())
    limiter.charge(EXECUTIONS_CREATE, "my-project/us-central1")
    with pytest.raises(gexc.ResourceExhausted) as raised:
        limiter.charge(EXECUTIONS_CREATE, "my-project/us-central1")
    assert raised.value.code == 429
    assert raised.value.message.startswith(
        "Quota exceeded for quota metric 'Execution API write requests' and limit 'Execution API write "
        "requests per minute per location' of service 'workflowexecutions.googleapis.com' for consumer "
        "'my-project/us-central1'"
    )


def test_usage_is_counted_even_with_quotas_off() -> None:
    limiter = Quotas(clock=ManualClock())
    for _ in range(5):
        limiter.charge(EXECUTIONS_LIST, "p/l")
    assert limiter.usage() == {
        EXECUTIONS_LIST: {"p/l": {"limit": None, "unit": "requests", "calls": 5, "units": 5, "refused": 0}}
    }
    assert limiter.describe() == {}


def test_refusals_are_counted_beside_the_calls_admitted() -> None:
    limiter = quotas("workflows.executions.list=2/min", ManualClock())
    for _ in range(5):
        limiter.try_charge(EXECUTIONS_LIST, "p/l")
    assert limiter.usage()[EXECUTIONS_LIST]["p/l"] == {
        "limit": "2/min",
        "unit": "requests",
        "calls": 2,
        "units": 2,
        "refused": 3,
    }


async def test_many_calls_keep_few_entries_and_never_leave_the_window_early() -> None:
    clock = ManualClock()
    limiter = quotas("pubsub.publish.kb=100000/min", clock)
    for _ in range(50_000):
        limiter.charge(PUBSUB_PUBLISH_KB, "p", 1)
        await clock.advance(0.0001)  # 50,000 calls in 5 s
    window = limiter._windows[PUBSUB_PUBLISH_KB, "p"]
    assert len(window.entries) <= 200
    await clock.advance(54.9)  # the first calls were at most 60 s ago: still counted
    assert not limiter.try_charge(PUBSUB_PUBLISH_KB, "p", 50_001)


def test_quota_keys_are_the_project_and_location_a_resource_names() -> None:
    assert location_key("projects/p/locations/l/workflows/w/executions/e") == "p/l"
    assert location_key("projects/p/locations/l/workflows/w") == "p/l"
