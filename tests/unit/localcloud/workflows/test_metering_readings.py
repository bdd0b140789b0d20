"""The engine's meter under both readings of Google's pricing rule (``engine/metering.py``): one billable
step per step, and one per variable assignment (https://cloud.google.com/workflows/pricing?hl=ja: each
assignment is a billable step "whether done in the same assign step or in separate ones")."""

from __future__ import annotations

import asyncio
import pathlib
from typing import Any

import pytest

from localcloud.clock import ManualClock
from localcloud.workflows import cli
from localcloud.workflows.engine.interpreter import run_execution
from localcloud.workflows.engine.loader import load_workflow
from localcloud.workflows.engine.metering import StepMeter
from localcloud.workflows.engine.standalone import StandaloneHost, run_on_manual_clock
from localcloud.workflows.lang.errors import WorkflowError


def metered(source: str, argument: Any = None) -> tuple[Any, dict[str, dict[str, int]]]:
    """Runs ``source`` (main as a list of steps) on the engine; (result, both readings)."""
    meter = StepMeter()
    program = load_workflow(source, filename="test.yaml")
    clock = ManualClock()
    host = StandaloneHost(clock=clock)
    try:
        result = asyncio.run(run_on_manual_clock(run_execution(program, argument, host, meter=meter), clock))
    except WorkflowError as error:
        result = error
    return result, meter.readings()


def totals(readings: dict[str, dict[str, int]]) -> tuple[int, int]:
    return readings["per_step"]["total"], readings["per_assignment"]["total"]


ONE_ASSIGN_STEP = """
- init:
    assign:
      - a: 1
      - b: 2
      - c: 3
- done:
    return: ${a + b + c}
"""

THREE_ASSIGN_STEPS = """
- first:
    assign:
      - a: 1
- second:
    assign:
      - b: 2
- third:
    assign:
      - c: 3
- done:
    return: ${a + b + c}
"""


def test_three_assignments_cost_the_same_per_assignment_in_one_step_or_in_three() -> None:
    one, readings_one = metered(ONE_ASSIGN_STEP)
    three, readings_three = metered(THREE_ASSIGN_STEPS)
    assert one == three == 6
    assert totals(readings_one) == (2, 4)  # per step: init + return; per assignment: 3 + return
    assert totals(readings_three) == (4, 4)


def test_a_calls_result_is_one_more_assignment() -> None:
    source = """
- keep:
    call: sys.now
    result: now
- drop:
    call: sys.now
- done:
    return: ${now > 0}
"""
    result, readings = metered(source)
    assert result is True
    assert totals(readings) == (3, 4)
    assert readings["per_assignment"]["external"] == readings["per_step"]["external"] == 0


def test_an_inline_assign_or_call_in_a_condition_counts_under_the_per_assignment_reading_only() -> None:
    source = """
- decide:
    switch:
      - condition: ${true}
        assign:
          - x: 1
          - y: 2
- log:
    switch:
      - condition: ${x == 1}
        call: sys.log
        args:
          text: hello
        result: logged
- done:
    return: ${x + y}
"""
    result, readings = metered(source)
    assert result == 3
    # Per step: two switches and the return. Per assignment: each switch, two entries, the inline
    # call and its result, the return.
    assert totals(readings) == (3, 7)


def test_every_retry_counts_the_assignments_of_the_block_again() -> None:
    source = """
- start:
    assign:
      - tries: 0
- attempt:
    try:
      steps:
        - bump:
            assign:
              - tries: ${tries + 1}
              - seen: ${tries}
        - check:
            switch:
              - condition: ${tries < 3}
                raise: again
    retry:
      predicate: ${always}
      max_retries: 5
      backoff:
        initial_delay: 1
        max_delay: 1
        multiplier: 1
- done:
    return: ${tries}
"""
    source = "main:\n  steps:\n" + _indent(source, 4) + ALWAYS
    result, readings = metered(source)
    assert result == 3
    # Per step: start 1; three attempts of (try 1 + bump 1 + check 1) = 9; done 1 = 11, plus the
    # predicate's return twice = 13. Per assignment: start 1; three of (try 1 + bump 2 + check 1) = 12;
    # done 1; predicate 2 = 16.
    assert totals(readings) == (13, 16)


ALWAYS = """
always:
  params: [e]
  steps:
    - yes:
        return: true
"""


def _indent(text: str, spaces: int) -> str:
    return "\n".join((" " * spaces + line) if line.strip() else line for line in text.splitlines()) + "\n"


def test_an_assignment_that_fails_counts_as_a_failed_step_and_stops_the_rest() -> None:
    source = """
- init:
    assign:
      - a: 1
      - b: ${a / 0}
      - c: 3
"""
    error, readings = metered(source)
    assert isinstance(error, WorkflowError) and "ZeroDivisionError" in error.payload["tags"]
    assert totals(readings) == (1, 2)


def test_an_await_callback_is_external_under_both_readings_and_its_result_an_internal_assignment() -> None:
    source = """
- open:
    call: events.create_callback_endpoint
    args:
      http_callback_method: POST
    result: callback
- wait:
    try:
      call: events.await_callback
      args:
        callback: ${callback}
        timeout: 30
      result: reply
    except:
      as: e
      steps:
        - timed_out:
            return: ${e.tags}
"""
    result, readings = metered(source)
    assert result == ["TimeoutError"]  # nobody answered: the result was never assigned
    assert readings == {
        "per_step": {"internal": 2, "external": 1, "total": 3},
        "per_assignment": {"internal": 3, "external": 1, "total": 4},
    }


def test_workflows_run_steps_prints_both_readings(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workflow = tmp_path / "three.yaml"
    workflow.write_text(ONE_ASSIGN_STEP)
    assert cli.main(["run", str(workflow), "--steps"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "6"
    assert "steps: 2 internal, 0 external" in captured.err
    assert "steps counting each assignment: 4 internal, 0 external" in captured.err
