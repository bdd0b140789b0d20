"""The loader compiles every template that calls no subworkflow to a closure (the corpus runs each case
both ways); one that calls a subworkflow stays with the async evaluator and still works."""

from __future__ import annotations

from typing import Any

from localcloud.workflows.engine.interpreter import run_execution
from localcloud.workflows.engine.loader import load_workflow
from localcloud.workflows.engine.standalone import StandaloneHost
from localcloud.workflows.lang import ast

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
    - done:
        return: ${[a, b, c, d]}
twice:
  params: [x]
  steps:
    - r:
        return: ${x * 2}
"""


def assignments(compiled: bool) -> dict[str, ast.Assignment]:
    step = load_workflow(SOURCE, compiled=compiled).main.steps[0]
    assert isinstance(step, ast.AssignStep)
    return {a.target: a for a in step.assignments}


def test_templates_without_subworkflow_calls_are_compiled() -> None:
    compiled = assignments(True)
    assert compiled["a"].value.fn is not None
    assert compiled["b"].value.fn is not None
    assert compiled["c"].value.fn is None  # ${twice(a)} must await the subworkflow
    assert compiled["d"].path_fn is not None
    assert not compiled["a"].value.aliases and compiled["c"].value.aliases
    evaluated = assignments(False)
    assert all(a.value.fn is None and a.path_fn is None for a in evaluated.values())


async def test_compiled_and_evaluated_programs_agree() -> None:
    argument: dict[str, Any] = {"n": 4, "items": [1, 2]}
    results = [
        await run_execution(load_workflow(SOURCE, compiled=compiled), argument, StandaloneHost())
        for compiled in (True, False)
    ]
    assert results[0] == results[1] == [5, {"k": 10, "l": [2, 3]}, 10, {"e": [[5]]}]
