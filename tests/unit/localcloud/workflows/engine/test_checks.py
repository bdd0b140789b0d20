"""The whole-program checks: jumps and connectors, each naming the step and the line."""

from __future__ import annotations

import pytest

from localcloud.workflows.engine.loader import load_workflow
from localcloud.workflows.lang.errors import DeployError


def test_next_to_a_missing_step_names_the_jumping_step() -> None:
    source = "- a:\n    next: b\n- c:\n    return: 1\n"
    with pytest.raises(DeployError) as raised:
        load_workflow(source)
    assert raised.value.step == "a"
    assert raised.value.line == 1
    assert "missing step 'b'" in str(raised.value)


def test_a_connector_the_engine_does_not_route_deploys_and_a_malformed_name_does_not() -> None:
    # Google deploys a workflow that names any connector; this engine says it is not emulated when the
    # call runs (HttpError 501), so only a name that cannot be a connector is refused here.
    program = load_workflow("- q:\n    call: googleapis.bigquery.v2.jobs.query\n", connectors=frozenset())
    assert program.main.steps[0].name == "q"
    with pytest.raises(DeployError) as raised:
        load_workflow("- q:\n    call: googleapis.bigquery\n", connectors=frozenset())
    assert raised.value.line == 2


def test_connectors_allowed_by_the_caller_load() -> None:
    source = "- p:\n    call: googleapis.pubsub.v1.projects.topics.publish\n    args:\n      topic: t\n"
    program = load_workflow(source, connectors=frozenset({"googleapis.pubsub.v1.projects.topics.publish"}))
    assert program.main.steps[0].name == "p"


def test_an_unknown_function_in_an_expression_points_at_the_call() -> None:
    source = "- s:\n    return: '${1 + nosuch(2)}'\n"
    with pytest.raises(DeployError) as raised:
        load_workflow(source)
    assert (raised.value.step, raised.value.line) == ("s", 2)
    assert "unknown function 'nosuch'" in str(raised.value)
    line, caret = str(raised.value).splitlines()[-2:]
    assert caret.index("^") == line.index("nosuch")


PARALLEL_WRITE = """\
- init:
    assign:
      - total: 0
      - seen: []
- fan:
    parallel:
      shared: [total]
      branches:
        - one:
            steps:
              - add:
                  assign:
                    - total: ${total + 1}
        - two:
            steps:
              - note:
                  assign:
                    - seen: ${[2]}
"""


def test_a_branch_writing_a_parent_variable_not_shared_names_the_step_and_the_variable() -> None:
    with pytest.raises(DeployError) as raised:
        load_workflow(PARALLEL_WRITE)
    assert (raised.value.step, raised.value.line, raised.value.column) == ("note", 18, 23)
    assert "variable 'seen' is not declared 'shared'" in str(raised.value)
    load_workflow(PARALLEL_WRITE.replace("shared: [total]", "shared: [total, seen]"))


def test_a_shared_variable_must_be_assigned_before_the_parallel_step() -> None:
    with pytest.raises(DeployError) as raised:
        load_workflow(PARALLEL_WRITE.replace("shared: [total]", "shared: [total, later]"))
    assert (raised.value.step, raised.value.line) == ("fan", 7)
    assert "shared variable 'later' must be assigned before the parallel step" in str(raised.value)


def test_a_jump_out_of_a_parallel_branch_is_refused() -> None:
    source = PARALLEL_WRITE.replace("shared: [total]", "shared: [total, seen]").replace(
        "                    - seen: ${[2]}\n",
        "                    - seen: ${[2]}\n                  next: init\n",
    )
    with pytest.raises(DeployError, match="missing step 'init'") as raised:
        load_workflow(source)
    assert raised.value.step == "note"


def test_a_grammar_mistake_is_reported_before_a_mistake_that_needs_the_whole_program() -> None:
    source = "- first:\n    call: no.such.function\n- second:\n    retrun: 1\n"
    with pytest.raises(DeployError, match="unknown step key 'retrun'"):
        load_workflow(source)
