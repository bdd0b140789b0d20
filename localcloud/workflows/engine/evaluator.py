"""Evaluates expression ASTs and value templates against a scope.

Evaluation is ``async`` only because an expression may call a subworkflow; everything else is plain
computation. Operator semantics: https://cloud.google.com/workflows/docs/reference/syntax/datatypes and
https://cloud.google.com/workflows/docs/reference/syntax/expressions
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

from localcloud.workflows.engine.host import Host
from localcloud.workflows.engine.stdlib import BUILTINS, CONSTANTS
from localcloud.workflows.lang import ast
from localcloud.workflows.lang.errors import WorkflowError
from localcloud.workflows.lang.values import (
    check_int,
    equal,
    is_int,
    is_number,
    size_of,
    to_string,
    type_error,
    type_name,
)


class Scope:
    """Variables of one routine invocation, loop body or parallel branch; lookups walk up to the parent.

    ``sizes`` caches ``size_of`` of each variable for the memory limit, so a check measures only the
    variables written since the last one: every write goes through ``set``/``define`` (which forget the
    cached size) or, for a write inside a variable, through ``resize``/``forget_size``. This relies on no
    two variables sharing a list or map, which Workflows' value semantics give (the interpreter copies
    wherever a value could be shared)."""

    __slots__ = ("parent", "sizes", "vars")

    def __init__(self, parent: Scope | None = None, values: dict[str, Any] | None = None) -> None:
        self.parent = parent
        self.vars: dict[str, Any] = values if values is not None else {}
        self.sizes: dict[str, int] = {}

    def owner(self, name: str) -> Scope | None:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.vars:
                return scope
            scope = scope.parent
        return None

    def get(self, name: str) -> Any:
        owner = self.owner(name)
        if owner is None:
            raise WorkflowError.tagged("KeyError", f"variable '{name}' not found")
        return owner.vars[name]

    def set(self, name: str, value: Any) -> None:
        scope = self.owner(name) or self
        scope.vars[name] = value
        scope.sizes.pop(name, None)

    def define(self, name: str, value: Any) -> None:
        """Create or replace ``name`` in this scope itself (a loop variable)."""
        self.vars[name] = value
        self.sizes.pop(name, None)

    def all_values(self) -> list[Any]:
        values: list[Any] = []
        scope: Scope | None = self
        while scope is not None:
            values.extend(scope.vars.values())
            scope = scope.parent
        return values

    def memory(self) -> int:
        """``size_of`` summed over every variable visible from here."""
        total = 0
        scope: Scope | None = self
        while scope is not None:
            sizes = scope.sizes
            if len(sizes) != len(scope.vars):
                for name, value in scope.vars.items():
                    if name not in sizes:
                        sizes[name] = size_of(value)
            for size in sizes.values():
                total += size
            scope = scope.parent
        return total


class Frame(Protocol):
    scope: Scope
    host: Host

    def is_routine(self, name: str) -> bool: ...

    async def call_routine(self, name: str, args: list[Any]) -> Any: ...


async def evaluate_template(template: ast.Template, frame: Frame) -> Any:
    fn = template.fn
    if fn is not None:
        return fn(frame)
    if isinstance(template, ast.Const):
        value = template.value
        return value if not isinstance(value, list | dict) else copy_value(value)
    if isinstance(template, ast.ExprTemplate):
        return await evaluate(template.expr, frame)
    if isinstance(template, ast.ListTemplate):
        return [await evaluate_template(item, frame) for item in template.items]
    if isinstance(template, ast.MapTemplate):
        return {key: await evaluate_template(value, frame) for key, value in template.entries}
    raise TypeError(f"unknown template {template!r}")


def copy_value(value: Any) -> Any:
    if isinstance(value, list):
        return [copy_value(v) for v in value]
    if isinstance(value, dict):
        return {k: copy_value(v) for k, v in value.items()}
    return value


async def evaluate(expr: ast.Expr, frame: Frame) -> Any:
    if isinstance(expr, ast.Literal):
        return expr.value
    if isinstance(expr, ast.Name):
        owner = frame.scope.owner(expr.name)
        if owner is not None:
            return owner.vars[expr.name]
        if frame.is_routine(expr.name) or expr.name in BUILTINS:
            return ast.FunctionRef(expr.name)
        raise WorkflowError.tagged("KeyError", f"variable '{expr.name}' not found")
    if isinstance(expr, ast.Member):
        dotted = ast.dotted_name(expr)
        if dotted is not None and frame.scope.owner(dotted.split(".", 1)[0]) is None:
            if dotted in CONSTANTS:
                return copy_value(CONSTANTS[dotted])
            if dotted in BUILTINS:
                return ast.FunctionRef(dotted)
        target = await evaluate(expr.target, frame)
        return get_key(target, expr.name)
    if isinstance(expr, ast.Index):
        target = await evaluate(expr.target, frame)
        index = await evaluate(expr.index, frame)
        return get_index(target, index)
    if isinstance(expr, ast.Binary):
        return await _binary(expr, frame)
    if isinstance(expr, ast.Unary):
        operand = await evaluate(expr.operand, frame)
        if expr.op == "not":
            if not isinstance(operand, bool):
                raise type_error(f"'not' needs a boolean, got {type_name(operand)}")
            return not operand
        return negate(operand)
    if isinstance(expr, ast.ListLit):
        return [await evaluate(item, frame) for item in expr.items]
    if isinstance(expr, ast.MapLit):
        result: dict[str, Any] = {}
        for key_expr, value_expr in expr.entries:
            key = await evaluate(key_expr, frame)
            if not isinstance(key, str):
                raise type_error(f"map keys must be strings, got {type_name(key)}")
            result[key] = await evaluate(value_expr, frame)
        return result
    if isinstance(expr, ast.Call):
        args = [await evaluate(arg, frame) for arg in expr.args]
        return await call_function(expr.function, args, frame)
    raise TypeError(f"unknown expression {expr!r}")


async def call_function(name: str, args: list[Any], frame: Frame) -> Any:
    """Calls a subworkflow or a built-in with positional arguments (as in expressions)."""
    if frame.is_routine(name):
        return await frame.call_routine(name, args)
    builtin = BUILTINS.get(name)
    if builtin is None:
        raise WorkflowError.tagged("KeyError", f"function '{name}' not found")
    bound = builtin.bind_positional(args)
    if builtin.is_async:
        return await builtin.fn(frame.host, *bound)
    return builtin.fn(frame.host, *bound)


def get_key(target: Any, key: str) -> Any:
    if isinstance(target, dict):
        if key not in target:
            raise WorkflowError.tagged("KeyError", f"key not found: {key}")
        return target[key]
    raise type_error(f"cannot read key '{key}' of a {type_name(target)}")


def get_index(target: Any, index: Any) -> Any:
    if isinstance(target, list):
        if not is_int(index):
            raise type_error(f"list index must be an integer, got {type_name(index)}")
        if index < 0 or index >= len(target):
            raise WorkflowError.tagged("IndexError", f"list index out of range: {index}")
        return target[index]
    if isinstance(target, dict):
        if not isinstance(index, str):
            raise type_error(f"map key must be a string, got {type_name(index)}")
        return get_key(target, index)
    raise type_error(f"cannot index a {type_name(target)}")


async def _binary(expr: ast.Binary, frame: Frame) -> Any:
    op = expr.op
    left = await evaluate(expr.left, frame)
    if op in ("and", "or"):
        if not isinstance(left, bool):
            raise type_error(f"'{op}' needs booleans, got {type_name(left)}")
        if (op == "and" and not left) or (op == "or" and left):
            return left
        right = await evaluate(expr.right, frame)
        if not isinstance(right, bool):
            raise type_error(f"'{op}' needs booleans, got {type_name(right)}")
        return right
    right = await evaluate(expr.right, frame)
    return apply_binary(op, left, right)


def negate(operand: Any) -> Any:
    """Unary ``-``."""
    if is_int(operand):
        return check_int(-operand)
    if isinstance(operand, float):
        return -operand
    raise type_error(f"unary '-' needs a number, got {type_name(operand)}")


def apply_binary(op: str, left: Any, right: Any) -> Any:
    operator = BINARY_OPERATORS.get(op)
    if operator is None:
        raise TypeError(f"unknown operator {op}")
    return operator(left, right)


def _in(left: Any, right: Any) -> bool:
    if isinstance(right, list):
        return any(equal(left, item) for item in right)
    if isinstance(right, dict):
        if not isinstance(left, str):
            raise type_error(f"'in' on a map needs a string key, got {type_name(left)}")
        return left in right
    raise type_error(f"'in' needs a list or a map on the right, got {type_name(right)}")


def _not_equal(left: Any, right: Any) -> bool:
    return not equal(left, right)


def _add(left: Any, right: Any) -> Any:
    if is_int(left) and is_int(right):
        return check_int(left + right)
    if is_number(left) and is_number(right):
        return _finite(float(left) + float(right), left, right)
    if isinstance(left, str) or isinstance(right, str):
        other = right if isinstance(left, str) else left
        if isinstance(other, str | bool | int | float):
            return to_string(left) + to_string(right)
    if isinstance(left, bytes) and isinstance(right, bytes):
        return left + right
    raise type_error(f"'+' cannot add {type_name(left)} and {type_name(right)}")


def _finite(result: float, left: Any, right: Any) -> float:
    if math.isinf(result) and not (math.isinf(left) or math.isinf(right)):
        raise WorkflowError.tagged("ValueError", "double overflow")
    return result


def _arithmetic(op: str, left: Any, right: Any) -> Any:
    if not (is_number(left) and is_number(right)):
        raise type_error(f"'{op}' needs numbers, got {type_name(left)} and {type_name(right)}")
    if op == "-":
        if is_int(left) and is_int(right):
            return check_int(left - right)
        return _finite(float(left) - float(right), left, right)
    if op == "*":
        if is_int(left) and is_int(right):
            return check_int(left * right)
        return _finite(float(left) * float(right), left, right)
    if right == 0:
        raise WorkflowError.tagged("ZeroDivisionError", "division by zero")
    if op == "/":
        return float(left) / float(right)
    if op == "//":
        return check_int(left // right) if is_int(left) and is_int(right) else float(math.floor(left / right))
    if is_int(left) and is_int(right):
        return left % right
    return math.fmod(float(left), float(right))


def _compare(op: str, left: Any, right: Any) -> bool:
    if (is_number(left) and is_number(right)) or (isinstance(left, str) and isinstance(right, str)):
        pass
    else:
        raise type_error(f"'{op}' cannot compare {type_name(left)} and {type_name(right)}")
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def _arithmetic_with(op: str) -> Callable[[Any, Any], Any]:
    return lambda left, right: _arithmetic(op, left, right)


def _compare_with(op: str) -> Callable[[Any, Any], bool]:
    return lambda left, right: _compare(op, left, right)


# Every binary operator but the short-circuit ``and``/``or``: ``op -> fn(left, right)``.
BINARY_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+": _add,
    **{op: _arithmetic_with(op) for op in ("-", "*", "/", "//", "%")},
    "==": equal,
    "!=": _not_equal,
    **{op: _compare_with(op) for op in ("<", "<=", ">", ">=")},
    "in": _in,
}
