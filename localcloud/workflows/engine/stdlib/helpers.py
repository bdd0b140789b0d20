"""Expression helpers: https://cloud.google.com/workflows/docs/reference/stdlib/expression-helpers"""

from __future__ import annotations

import math
import re
from typing import Any

from localcloud.workflows.engine.stdlib.registry import builtin
from localcloud.workflows.lang.errors import WorkflowError
from localcloud.workflows.lang.values import check_int, is_int, to_string, type_error, type_name

_INT_TEXT = re.compile(r"^\s*[+-]?\d+\s*$")
_DOUBLE_TEXT = re.compile(r"^\s*[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?)\s*$")


@builtin("default")
def default(host: Any, value: Any, default_value: Any) -> Any:
    return default_value if value is None else value


@builtin("keys")
def keys(host: Any, map_: Any) -> list[str]:
    if not isinstance(map_, dict):
        raise type_error(f"keys: expected a map, got {type_name(map_)}")
    return list(map_.keys())


@builtin("len")
def length(host: Any, value: Any) -> int:
    if isinstance(value, str | list | dict | bytes):
        return len(value)
    raise type_error(f"len: expected a string, bytes, list or map, got {type_name(value)}")


@builtin("int")
def to_int(host: Any, value: Any) -> int:
    if is_int(value):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise WorkflowError.tagged("ValueError", f"int: cannot convert {value} to integer")
        return check_int(int(value))
    if isinstance(value, str):
        if _INT_TEXT.match(value):
            return check_int(int(value))
        if _DOUBLE_TEXT.match(value):
            return check_int(int(float(value)))
        raise WorkflowError.tagged("ValueError", f"int: cannot convert {value!r} to integer")
    raise type_error(f"int: expected a string, integer or double, got {type_name(value)}")


@builtin("double")
def to_double(host: Any, value: Any) -> float:
    if is_int(value) or isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        if _DOUBLE_TEXT.match(value):
            return float(value)
        raise WorkflowError.tagged("ValueError", f"double: cannot convert {value!r} to double")
    raise type_error(f"double: expected a string, integer or double, got {type_name(value)}")


@builtin("string")
def to_str(host: Any, value: Any) -> str:
    if isinstance(value, str | bool | int | float):
        return to_string(value)
    raise type_error(f"string: expected a string, integer, double or boolean, got {type_name(value)}")


@builtin("if")
def if_(host: Any, condition: Any, if_true: Any, if_false: Any) -> Any:
    if condition is None:
        return if_false
    if not isinstance(condition, bool):
        raise type_error(f"if: condition must be a boolean, got {type_name(condition)}")
    return if_true if condition else if_false


@builtin("get_type")
def get_type(host: Any, value: Any) -> str:
    return type_name(value)
