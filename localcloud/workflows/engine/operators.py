"""What the operators and accessors of Workflows expressions do, written once for the compiler.

https://cloud.google.com/workflows/docs/reference/syntax/datatypes and
https://cloud.google.com/workflows/docs/reference/syntax/expressions
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from localcloud.workflows.lang.errors import WorkflowError
from localcloud.workflows.lang.values import (
    check_int,
    equal,
    is_int,
    is_number,
    to_string,
    type_error,
    type_name,
)


def logical_not(operand: Any) -> bool:
    if not isinstance(operand, bool):
        raise type_error(f"'not' needs a boolean, got {type_name(operand)}")
    return not operand


def check_boolean(op: str, operand: Any) -> bool:
    """An operand of ``and``/``or``, which must be a boolean."""
    if not isinstance(operand, bool):
        raise type_error(f"'{op}' needs booleans, got {type_name(operand)}")
    return operand


def string_key(key: Any) -> str:
    """A key of a map literal, which must be a string."""
    if not isinstance(key, str):
        raise type_error(f"map keys must be strings, got {type_name(key)}")
    return key


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


def negate(operand: Any) -> Any:
    """Unary ``-``."""
    if is_int(operand):
        return check_int(-operand)
    if isinstance(operand, float):
        return -operand
    raise type_error(f"unary '-' needs a number, got {type_name(operand)}")


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
