"""Values of the Workflows language and the rules of their types.

Python values stand for Workflows values: ``None`` null, ``bool``, ``int`` (64-bit signed; a Python ``bool``
is never treated as an int here), ``float`` double, ``str``, ``bytes``, ``list`` and ``dict`` (ordered map
with string keys). https://cloud.google.com/workflows/docs/reference/syntax/datatypes
"""

from __future__ import annotations

import math
from typing import Any

from localcloud.workflows.lang.errors import WorkflowError

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
MEMORY_LIMIT_BYTES = 512 * 1024


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, float)


def type_name(value: Any) -> str:
    """The names ``get_type`` returns."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bytes):
        return "bytes"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "map"
    return "function"


def check_int(value: int) -> int:
    if value < INT_MIN or value > INT_MAX:
        raise WorkflowError.tagged("ValueError", "integer overflow")
    return value


def type_error(message: str) -> WorkflowError:
    return WorkflowError.tagged("TypeError", message)


def format_double(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def to_string(value: Any) -> str:
    """The text of a scalar as ``string()`` and ``+`` produce it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if is_int(value):
        return str(value)
    if isinstance(value, float):
        return format_double(value)
    raise type_error(f"cannot convert {type_name(value)} to string")


def equal(a: Any, b: Any) -> bool:
    if is_number(a) and is_number(b):
        return bool(a == b)
    if type_name(a) != type_name(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    return bool(a == b)


_SCALARS = frozenset({str, int, float, bool, type(None), bytes})


def deep_copy(value: Any) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict:
        return {k: v if type(v) in _SCALARS else deep_copy(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) in _SCALARS else deep_copy(v) for v in value]
    if isinstance(value, list):
        return [deep_copy(v) for v in value]
    if isinstance(value, dict):
        return {k: deep_copy(v) for k, v in value.items()}
    return value


def size_of(value: Any) -> int:
    """An estimate of the bytes a value takes against the 512 KB variable memory limit (its JSON size)."""
    kind = type(value)
    if kind is str:
        return len(value) + 2
    if kind is dict:
        total = 2
        for key, item in value.items():
            total += len(key) + 3 + (len(item) + 2 if type(item) is str else size_of(item))
        return total
    if kind is list:
        total = 2
        for item in value:
            total += (len(item) + 2 if type(item) is str else size_of(item)) + 1
        return total
    if value is None or kind is bool:
        return 4
    if kind is int or kind is float:
        return 8
    if kind is bytes:
        return len(value)
    return _size_of_other(value)


def _size_of_other(value: Any) -> int:
    """``size_of`` for subclasses of the value types (the fast path above tests exact types)."""
    if isinstance(value, bool):
        return 4
    if isinstance(value, int | float):
        return 8
    if isinstance(value, str):
        return len(value) + 2
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, list):
        return 2 + sum(size_of(v) + 1 for v in value)
    if isinstance(value, dict):
        return 2 + sum(len(k) + 3 + size_of(v) for k, v in value.items())
    return 8
