"""Building the AST from YAML: expressions parsed once, grammar mistakes named with step, line, column and a
caret."""

from __future__ import annotations

import pytest

from localcloud.workflows.engine.loader import load_workflow
from localcloud.workflows.lang.errors import DeployError

SOURCE_WITH_BAD_EXPRESSION = """\
main:
  steps:
    - fine:
        assign:
          - x: 1
    - broken:
        assign:
          - y: ${x + * 2}
"""


def test_expression_error_names_step_line_column_and_points_a_caret_at_the_mistake() -> None:
    with pytest.raises(DeployError) as raised:
        load_workflow(SOURCE_WITH_BAD_EXPRESSION)
    error = raised.value
    assert error.step == "broken"
    assert error.line == 8
    # "          - y: ${x + * 2}" : the value starts at column 16, "${" adds 2, "x + " adds 4.
    assert error.column == 16 + 2 + 4
    assert error.source_line == "          - y: ${x + * 2}"
    rendered = str(error).splitlines()
    assert rendered[0].startswith("step 'broken', line 8, column 22: invalid expression")
    assert rendered[1] == "            - y: ${x + * 2}"
    assert rendered[2].index("^") == rendered[1].index("*")


def test_unknown_step_key_points_at_the_key() -> None:
    source = "- first:\n    assign:\n      - a: 1\n- second:\n    retrun: ${a}\n"
    with pytest.raises(DeployError) as raised:
        load_workflow(source)
    assert (raised.value.step, raised.value.line, raised.value.column) == ("second", 5, 5)
    assert "unknown step key 'retrun'" in str(raised.value)
    source_line, caret = str(raised.value).splitlines()[-2:]
    assert caret.index("^") == source_line.index("retrun")


def test_quoted_expression_column_accounts_for_the_quote() -> None:
    source = "- s:\n    return: '${1 +}'\n"
    with pytest.raises(DeployError) as raised:
        load_workflow(source)
    # value starts at column 13 (the quote), then the quote, "${", "1 +" and the end of the expression.
    assert raised.value.column == 13 + 1 + 2 + 3


def test_every_expression_is_parsed_once_at_load() -> None:
    from localcloud.workflows.lang import ast

    program = load_workflow("- s:\n    return: ${1 + 2 * 3}\n")
    step = program.main.steps[0]
    assert isinstance(step, ast.ReturnStep)
    assert isinstance(step.value, ast.ExprTemplate)
    assert isinstance(step.value.expr, ast.Binary) and step.value.expr.op == "+"
