"""The loader compiles every template and assignment path once, beside the AST; only code that calls a
subworkflow awaits, and it evaluates in the same order, with the same errors, as code that does not."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from localcloud.workflows.engine.interpreter import run_execution
from localcloud.workflows.engine.loader import load_workflow
from localcloud.workflows.engine.metering import StepMeter
from localcloud.workflows.engine.standalone import StandaloneHost
from localcloud.workflows.lang import ast
from localcloud.workflows.lang.errors import WorkflowError

SOURCE = """\
main:
  params: [args]
  steps:
    - plain:
        assign:
          - a: ${args.n + 1}
          - b: {"k": "${a * 2}", "l": ["${len(args.items)}", 3]}
          - c: ${twice(a)}
          - d: {"e": [0]}
          - d.e[0]: ${[a]}
          - f: {"k": "${twice(a)}", "l": ["${twice(1)}", "${a}"]}
    - done:
        return: ${[a, b, c, d, f]}
twice:
  params: [x]
  steps:
    - r:
        return: ${x * 2}
"""


def test_only_templates_calling_a_subworkflow_await_and_only_variables_are_copied() -> None:
    program = load_workflow(SOURCE)
    step = program.main.steps[0]
    assert isinstance(step, ast.AssignStep)
    code = {a.target if not a.path else "d.e[0]": program.template(a.value) for a in step.assignments}
    assert not code["a"].awaits and not code["b"].awaits
    assert code["c"].awaits and code["f"].awaits
    assert not code["a"].aliases and code["c"].aliases
    assert not program.path(step.assignments[4]).awaits


def closures_in(node: Any, where: str = "program") -> list[str]:
    """The places in an AST that hold a function."""
    if callable(node) and not isinstance(node, type):
        return [where]
    if dataclasses.is_dataclass(node):
        return [
            found
            for field in dataclasses.fields(node)
            for found in closures_in(getattr(node, field.name), f"{where}.{field.name}")
        ]
    if isinstance(node, list | tuple):
        return [found for i, item in enumerate(node) for found in closures_in(item, f"{where}[{i}]")]
    if isinstance(node, dict):
        return [found for key, item in node.items() for found in closures_in(item, f"{where}[{key!r}]")]
    return []


def test_the_ast_holds_no_compiled_code() -> None:
    program = load_workflow(SOURCE)
    assert closures_in(program.program) == []
    assert closures_in(program.templates) != []  # the code lives beside it


async def test_awaiting_and_plain_templates_give_the_values_of_the_workflow() -> None:
    argument: dict[str, Any] = {"n": 4, "items": [1, 2]}
    result = await run_execution(load_workflow(SOURCE), argument, StandaloneHost())
    assert result == [5, {"k": 10, "l": [2, 3]}, 10, {"e": [[5]]}, {"k": 10, "l": [2, 5]}]


WITH_CALLS = """\
main:
  params: [args]
  steps:
    - s:
        return: '{EXPRESSION}'
noisy:
  params: [x]
  steps:
    - count:
        assign:
          - y: ${{x}}
    - r:
        return: ${{x}}
"""


async def run(expression: str) -> tuple[Any, int]:
    meter = StepMeter()
    program = load_workflow(WITH_CALLS.format(EXPRESSION=expression))
    result = await run_execution(program, None, StandaloneHost(), meter=meter)
    return result, meter.total


async def test_and_or_do_not_call_a_subworkflow_on_the_side_they_skip() -> None:
    assert await run("${false and noisy(true)}") == (False, 1)
    assert await run("${true or noisy(true)}") == (True, 1)
    assert await run("${true and noisy(false)}") == (False, 3)


async def test_a_non_string_map_key_fails_before_a_later_subworkflow_call() -> None:
    with pytest.raises(WorkflowError) as raised:
        await run_execution(
            load_workflow(WITH_CALLS.format(EXPRESSION='${{1: noisy(1), "k": noisy(2)}}')),
            None,
            StandaloneHost(),
            meter=(meter := StepMeter()),
        )
    assert "TypeError" in raised.value.payload["tags"]
    assert meter.total == 1  # neither call ran


async def test_a_subworkflow_result_can_be_indexed_and_read_by_key() -> None:
    assert await run('${noisy({"a": [7, 8]}).a[1] + noisy(1)}') == (9, 5)
