"""The Pratt parser: precedence and associativity from the one binding-power table, the node shapes, and
syntax errors with the offset a caret points at."""

from __future__ import annotations

import pytest

from localcloud.workflows.engine.loader import load_workflow
from localcloud.workflows.lang import ast
from localcloud.workflows.lang.errors import DeployError
from localcloud.workflows.lang.lexer import ExpressionSyntaxError
from localcloud.workflows.lang.parser import MAX_EXPRESSION_LENGTH, parse_expression
from localcloud.workflows.lang.values import INT_MAX


def shape(expr: ast.Expr) -> str:
    """The tree written with every group in parentheses."""
    if isinstance(expr, ast.Literal):
        return repr(expr.value)
    if isinstance(expr, ast.Name):
        return expr.name
    if isinstance(expr, ast.Member):
        return f"{shape(expr.target)}.{expr.name}"
    if isinstance(expr, ast.Index):
        return f"{shape(expr.target)}[{shape(expr.index)}]"
    if isinstance(expr, ast.Unary):
        return f"({expr.op} {shape(expr.operand)})"
    if isinstance(expr, ast.Binary):
        return f"({shape(expr.left)} {expr.op} {shape(expr.right)})"
    if isinstance(expr, ast.Call):
        return f"{expr.function}({', '.join(shape(a) for a in expr.args)})"
    if isinstance(expr, ast.ListLit):
        return f"[{', '.join(shape(i) for i in expr.items)}]"
    assert isinstance(expr, ast.MapLit)
    return "{" + ", ".join(f"{shape(k)}: {shape(v)}" for k, v in expr.entries) + "}"


@pytest.mark.parametrize(
    ("source", "tree"),
    [
        ("1 + 2 * 3", "(1 + (2 * 3))"),
        ("1 * 2 + 3", "((1 * 2) + 3)"),
        ("a - b - c", "((a - b) - c)"),
        ("a / b // c % d", "(((a / b) // c) % d)"),
        ("a + b < c * d", "((a + b) < (c * d))"),
        ("a == b and c != d or e in f", "(((a == b) and (c != d)) or (e in f))"),
        ("a or b and c", "(a or (b and c))"),
        ("a < b == c", "((a < b) == c)"),
        ("not a and b", "((not a) and b)"),
        ("not a == b", "((not a) == b)"),
        ("-a * b", "((- a) * b)"),
        ("-a.b[0]", "(- a.b[0])"),
        ("(1 + 2) * 3", "((1 + 2) * 3)"),
        ("a.b[c.d].e", "a.b[c.d].e"),
        ("f(x)[0].y", "f(x)[0].y"),
        ('text.split(s, ",")', "text.split(s, ',')"),
    ],
)
def test_precedence_and_left_associativity_follow_the_binding_power_table(source: str, tree: str) -> None:
    assert shape(parse_expression(source)) == tree


def test_a_negative_number_is_a_literal_and_the_smallest_int_is_allowed() -> None:
    assert parse_expression("-2") == ast.Literal(0, -2)
    assert parse_expression("-1.5") == ast.Literal(0, -1.5)
    assert parse_expression(f"-{INT_MAX + 1}") == ast.Literal(0, -(INT_MAX + 1))


def test_list_and_map_literals_and_calls_take_comma_separated_items() -> None:
    assert shape(parse_expression('[1, "a", [true, null]]')) == "[1, 'a', [True, None]]"
    assert shape(parse_expression('{"a": 1, "b": [x]}')) == "{'a': 1, 'b': [x]}"
    assert shape(parse_expression("{}")) == "{}"
    assert shape(parse_expression("sys.now()")) == "sys.now()"
    assert shape(parse_expression("f(1, g(2), 3)")) == "f(1, g(2), 3)"


def test_keywords_may_follow_a_dot_as_key_names() -> None:
    assert shape(parse_expression("a.in.and.not.null")) == "a.in.and.not.null"


def test_nodes_carry_the_offset_of_their_operator_or_first_token() -> None:
    expr = parse_expression("a + f(b)")
    assert isinstance(expr, ast.Binary)
    assert (expr.offset, expr.right.offset) == (2, 4)


@pytest.mark.parametrize(
    ("source", "message", "offset"),
    [
        ("1 +", "unexpected end of expression", 3),
        ("1 2", "unexpected '2'", 2),
        ("(1 + 2", "expected ')', found end of expression", 6),
        ("[1, 2", "expected ']', found end of expression", 5),
        ("{'a' 1}", "expected ':', found '1'", 5),
        ("a.+", "expected a name after '.'", 2),
        ("(a + b)(1)", "only named functions can be called", 7),
        ("f(1,)", "unexpected ')'", 4),
        ("* 2", "unexpected '*'", 0),
        (str(INT_MAX + 1), "integer literal out of range", 0),
    ],
)
def test_a_syntax_error_names_the_mistake_and_its_offset(source: str, message: str, offset: int) -> None:
    with pytest.raises(ExpressionSyntaxError) as raised:
        parse_expression(source)
    assert (raised.value.message, raised.value.offset) == (message, offset)


def test_a_syntax_error_in_a_workflow_points_a_caret_at_its_column() -> None:
    source = "- s:\n    return: ${[1, 2}\n"
    with pytest.raises(DeployError) as raised:
        load_workflow(source)
    error = raised.value
    assert (error.step, error.line, error.column) == ("s", 2, 13 + 2 + 5)
    assert "expected ']', found end of expression" in str(error)
    line, caret = str(error).splitlines()[-2:]
    assert caret.index("^") == line.index("}")


def test_an_expression_over_the_length_limit_is_refused() -> None:
    long = "1" + " + 1" * (MAX_EXPRESSION_LENGTH // 4)
    with pytest.raises(DeployError, match=f"longer than {MAX_EXPRESSION_LENGTH} characters"):
        load_workflow(f"- s:\n    return: ${{{long}}}\n")
