"""Chaos, small (issue #18; ``make chaos`` runs 1,000 sagas): sagas on a stack of their own while the
functions and the participants are killed with SIGKILL at random moments and restarted on the same port.
Whatever the kills did, each saga has exactly one result, no participant applied an effect twice or an
execute after its compensation, and the sagas' resources are as their results say."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from bench.chaos import ChaosConfig, launch, run
from devstack.stack import LocalStack, missing_components

pytestmark = pytest.mark.e2e

SAGAS = 60
SEED = 18
PUBLISH_SECONDS = 20.0


@pytest.fixture(scope="module")
def chaos_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    assert missing_components() == [], "the local stack is not complete in this checkout"
    stack = launch(tmp_path_factory.mktemp("chaos-logs"), tmp_path_factory.mktemp("chaos-state"))
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def report(chaos_stack: LocalStack) -> dict[str, Any]:
    # Paced over ~20 s so that the kills (one every second or two) land while sagas run.
    config = ChaosConfig(
        sagas=SAGAS,
        seed=SEED,
        rate=SAGAS / PUBLISH_SECONDS,
        kill_gap=(0.2, 1.2),
        result_timeout=60.0,
        # A request whose deliveries met a killed start_saga several times waits out Eventarc's doubling
        # backoff (10 s, 20 s, 40 s, ...): the wait ends as soon as every result is in.
        after_kills_timeout=200.0,
        settle_seconds=5.0,
    )
    return run(chaos_stack, config)


def explain(report: dict[str, Any]) -> str:
    keys = ("statuses", "kills", "kills_amid_sagas", "sagas_through_a_kill", "broken", "restart_failures")
    shown = {key: report[key] for key in keys}
    return json.dumps(shown, indent=1)


def test_processes_were_killed_and_came_back_on_their_ports(report: dict[str, Any]) -> None:
    assert report["kills_total"] >= 3, explain(report)
    assert report["restart_failures"] == []


def test_the_kills_hit_running_sagas(report: dict[str, Any]) -> None:
    # Kills of an idle stack would prove nothing: most must land while sagas are between their
    # publication and their result, and several sagas must live through one (12 of 60 in a run here).
    assert report["kills_amid_sagas"] >= 3, explain(report)
    assert report["kills_amid_sagas"] >= report["kills_total"] // 2, explain(report)
    assert report["sagas_through_a_kill"] >= 5, explain(report)


@pytest.mark.parametrize(
    "check",
    [
        "one_result_per_saga",
        "no_effect_twice",
        "no_execute_after_compensation",
        "compensated_sagas_fully_undone",
        "succeeded_sagas_fully_done",
    ],
)
def test_every_saga_keeps_its_guarantees_through_the_kills(report: dict[str, Any], check: str) -> None:
    assert report["checks"][check]["ok"], explain(report)


def test_every_saga_ended(report: dict[str, Any]) -> None:
    assert sum(report["statuses"].values()) == SAGAS, explain(report)
    assert set(report["statuses"]) <= {"succeeded", "compensated", "failed"}, explain(report)
