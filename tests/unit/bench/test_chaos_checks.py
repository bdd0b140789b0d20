"""The chaos run's checks (``bench.chaos_checks.check``) on made-up records: each property fails on the record
that breaks it and names the saga; the request mix is a function of the seed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.chaos import ChaosConfig, write_json
from bench.chaos_checks import check, kills_amid_sagas
from bench.chaos_plan import Planned, plan

URLS = {"flight": "http://f", "hotel": "http://h", "payment": "http://p"}
STEPS = (("flight", "book_flight"), ("hotel", "reserve_hotel"), ("payment", "charge_payment"))


def entry(seq: int, saga: str, step: str, action: str, effect: bool) -> dict[str, Any]:
    return {"seq": seq, "saga_id": saga, "step": step, "action": action, "effect": effect}


def succeeded(saga: str) -> tuple[dict[str, list[dict[str, Any]]], dict[str, dict[str, dict[str, Any]]]]:
    """The journals and resources of a saga whose three steps took effect."""
    done = {"flight": "booked", "hotel": "reserved", "payment": "charged"}
    journals = {service: [entry(1, saga, step, "execute", True)] for service, step in STEPS}
    resources = {
        service: {f"{service}-{saga}": {"saga_id": saga, "step": step, "status": done[service]}}
        for service, step in STEPS
    }
    return journals, resources


def outcome(status: str, ce_id: str = "id-1") -> dict[str, dict[str, Any]]:
    return {ce_id: {"status": status}}


def failing(report: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    return {
        name: sorted({s for key in ("missing", "duplicated", "sagas") for s in result.get(key, [])})
        for name, result in report.items()
        if not result["ok"]
    }


def test_a_clean_run_passes_every_check() -> None:
    journals, resources = succeeded("s1")
    assert (
        failing(check([Planned("s1", False, None)], {"s1": outcome("succeeded")}, journals, resources)) == {}
    )


def test_a_saga_without_a_result_or_with_two_fails_one_result_per_saga() -> None:
    journals, resources = succeeded("s1")
    planned = [Planned("s1", False, None), Planned("s2", False, None)]
    results = {"s1": {**outcome("succeeded"), **outcome("failed", "id-2")}, "s2": {}}
    assert failing(check(planned, results, journals, resources))["one_result_per_saga"] == ["s1", "s2"]


def test_an_effect_applied_twice_is_found_even_under_another_key() -> None:
    journals, resources = succeeded("s1")
    journals["hotel"].append(entry(2, "s1", "reserve_hotel", "execute", True))
    report = failing(check([Planned("s1", False, None)], {"s1": outcome("succeeded")}, journals, resources))
    assert report == {"no_effect_twice": ["s1"]}


def test_an_execute_applied_after_its_compensation_was_decided_is_found() -> None:
    journals, resources = succeeded("s1")
    journals["flight"] = [
        entry(1, "s1", "book_flight", "compensate", False),  # a null compensation
        entry(2, "s1", "book_flight", "execute", True),
    ]
    report = failing(check([Planned("s1", False, None)], {"s1": outcome("succeeded")}, journals, resources))
    assert report == {"no_execute_after_compensation": ["s1"]}


def test_an_execute_refused_after_its_compensation_is_counted_not_failed() -> None:
    journals, resources = succeeded("s1")
    journals["flight"] = [
        entry(1, "s1", "book_flight", "compensate", False),
        {**entry(2, "s1", "book_flight", "execute", False), "outcome": "refused: compensated earlier"},
    ]
    resources["flight"] = {}
    report = check([Planned("s1", True, None)], {"s1": outcome("compensated")}, journals, resources)
    assert report["no_execute_after_compensation"] == {"ok": True, "sagas": [], "late_executes_refused": 1}


def test_a_compensated_saga_with_a_resource_in_place_is_found() -> None:
    journals, resources = succeeded("s1")
    resources["flight"]["flight-s1"]["status"] = "cancelled"
    resources["hotel"]["hotel-s1"]["status"] = "released"
    report = failing(check([Planned("s1", True, None)], {"s1": outcome("compensated")}, journals, resources))
    assert report == {"compensated_sagas_fully_undone": ["s1"]}  # the charge is still there


def test_a_succeeded_saga_missing_a_resource_is_found() -> None:
    journals, resources = succeeded("s1")
    resources["payment"] = {}
    report = failing(check([Planned("s1", False, None)], {"s1": outcome("succeeded")}, journals, resources))
    assert report == {"succeeded_sagas_fully_done": ["s1"]}


def test_the_request_mix_depends_on_the_seed_only() -> None:
    config = ChaosConfig(sagas=50, seed=3)
    first = [(p.declined, p.slow, r["steps"]) for p, r in plan(URLS, config, "a")]
    second = [(p.declined, p.slow, r["steps"]) for p, r in plan(URLS, config, "b")]
    assert first == second
    assert any(p for p, _, _ in first) and any(s for _, s, _ in first)
    assert first != [
        (p.declined, p.slow, r["steps"]) for p, r in plan(URLS, ChaosConfig(sagas=50, seed=4), "a")
    ]


def test_the_report_is_merged_into_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    target.write_text(json.dumps({"saga": {"kept": True}, "chaos": {"old": 1}}), encoding="utf-8")
    write_json(target, {"sagas": 3})
    assert json.loads(target.read_text(encoding="utf-8")) == {"saga": {"kept": True}, "chaos": {"sagas": 3}}


def test_kills_amid_sagas_counts_the_kills_that_hit_a_running_saga() -> None:
    lives = {"a": (0.0, 5.0), "b": (4.0, 9.0), "c": (20.0, float("inf"))}
    kills = [{"at": 1.0}, {"at": 4.5}, {"at": 12.0}, {"at": 30.0}]
    assert kills_amid_sagas(kills, lives) == {"kills_amid_sagas": 3, "sagas_through_a_kill": 3}
    assert kills_amid_sagas([{"at": 12.0}], lives) == {"kills_amid_sagas": 0, "sagas_through_a_kill": 0}
    assert kills_amid_sagas([], lives) == {"kills_amid_sagas": 0, "sagas_through_a_kill": 0}
