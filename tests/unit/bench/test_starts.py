"""The start-rate section's report (``bench.starts``): the figure names the bound that stopped the climb,
and a start request is a valid one-step saga."""

from __future__ import annotations

from typing import Any

from saga_orchestrator.settings import Settings
from saga_orchestrator.validation import validate_request

from bench.starts import figures, one_step_request


def step(rate: float, created: float, refused: int = 0) -> dict[str, Any]:
    held = refused == 0 and created >= 0.95 * rate
    return {
        "rate_per_s": rate,
        "created_per_s": created,
        "refused_429": refused,
        "list_calls": 0,
        "held": held,
    }


def section(*steps: dict[str, Any], best: float | None, bound: str) -> dict[str, Any]:
    return {
        "max_rate_no_429_per_s": best,
        "window_seconds": 60.0,
        "bounded_by": bound,
        "steps": list(steps),
        "quotas": {"workflows.executions.create": "6000/min"},
    }


def test_the_figure_is_the_highest_rate_held_and_names_what_stopped_the_climb() -> None:
    report = section(step(40, 40), step(55, 55), step(70, 55.2), best=55, bound="the machine")
    rate, lists = figures(report)
    assert rate.value == 55 and "create quota 6000/min" in rate.name
    assert rate.note == "bounded by the machine; steps: 40/s→40/s, 55/s→55/s, 70/s→55.2/s ✘"
    assert lists.value == 0 and lists.met is True


def test_refusals_are_shown_on_the_step_that_met_the_quota() -> None:
    report = section(step(95, 95), step(105, 99.8, refused=12), best=95, bound="the Executions quotas (429)")
    assert figures(report)[0].note.endswith("105/s→99.8/s 12×429 ✘")


def test_a_start_is_a_valid_one_step_saga() -> None:
    request = one_step_request({"flight": "http://127.0.0.1:9001"}, "bench-start-1")
    settings = Settings.from_env({"SAGA_ALLOWED_HOSTS": "127.0.0.1"})
    validated = validate_request(request, settings, message_id="m-1", requested_at=None)
    assert [s.name for s in validated.steps] == ["book_flight"]


def test_the_headline_keys_come_from_the_sections_that_ran() -> None:
    from bench.__main__ import headline_keys

    data = {
        "throughput": {"sagas_per_second": 151.2},
        "latency": {"steps_3": {"median": 14.1}},
        "starts": {
            "max_rate_no_429_per_s": 55,
            "window_seconds": 60.0,
            "quotas": {"workflows.executions.create": "6000/min"},
            "steps": [
                {"created_after_drain": 600, "list_calls": 0},
                {"created_after_drain": 900, "list_calls": 3},
            ],
        },
    }
    keys = headline_keys(data)
    assert keys["saga"] == {"throughput_per_s": 151.2, "latency_median_ms": 14.1}
    assert keys["start"]["list_calls_per_saga"] == 0.002
    assert keys["start"]["max_rate_no_429_per_s"] == 55
    assert headline_keys({}) == {}
