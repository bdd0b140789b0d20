"""The part of the Logging query language the emulator understands, parsed once per request.

Grammar (https://cloud.google.com/logging/docs/view/logging-query-language, "Syntax summary" and
"Comparisons"): a filter is comparisons ``FIELD OP VALUE`` joined by ``AND`` or by plain juxtaposition
(both mean AND). Supported:

- fields: ``logName``, ``severity``, ``timestamp``, ``receiveTimestamp``, ``insertId``, ``trace``,
  ``textPayload``, ``resource.type``, ``resource.labels.K``, ``labels.K``, ``jsonPayload.K[.K...]``; a
  key that is not an identifier is quoted (``labels."k8s-pod/app"``);
- operators ``=``, ``!=``, ``>``, ``>=``, ``<``, ``<=`` and ``:`` (has);
- values: a double-quoted string (``\\"`` and ``\\\\`` escapes), or a bare word or number; ``FIELD:*``
  tests that the field exists.

Comparison rules (the same page, "Comparison operators" and "Values and conversions"):

- ``severity`` compares by the severities' order (DEFAULT < DEBUG < INFO < NOTICE < WARNING < ERROR <
  CRITICAL < ALERT < EMERGENCY), by name or number;
- ``timestamp`` and ``receiveTimestamp`` compare as instants; the value is an RFC 3339 time;
- a number compares numerically with a numeric field (a JSON number, or a string holding a number);
- any other value compares as text: ``=`` exactly, ``:`` as a case-insensitive substring, the order
  operators lexicographically.

A field an entry does not have matches no comparison, ``!=`` included (the page only says that
``NOT FIELD=VALUE`` matches entries without the field; ``NOT`` is refused here).

Everything else (``OR``, ``NOT``, ``-``, parentheses, ``=~``/``!~``, functions such as ``SEARCH`` or
``sample``, global restrictions — a bare value — and other fields) raises ``UnsupportedFilterError``,
which the API answers 400 INVALID_ARGUMENT naming what it does not support.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf import timestamp_pb2

# ListLogEntriesRequest.filter: "The maximum length of a filter is 20,000 characters."
MAX_FILTER_CHARS = 20_000
SEVERITIES = ("DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY")
# LogSeverity numbers (google/logging/type/log_severity.proto).
SEVERITY_NUMBERS = dict(zip(SEVERITIES, (0, 100, 200, 300, 400, 500, 600, 700, 800), strict=True))
OPERATORS = ("=", "!=", ">", ">=", "<", "<=", ":")
TIME_FIELDS = frozenset({"timestamp", "receiveTimestamp"})
SCALAR_FIELDS = frozenset({"logName", "severity", "insertId", "trace", "textPayload", "resource.type"})
MAP_PREFIXES = ("labels", "resource.labels", "jsonPayload")
_REFUSED_WORDS = {"OR": "the OR operator", "NOT": "the NOT operator"}

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<op>!=|>=|<=|=~|!~|[=><:])
      | (?P<paren>[()])
      | (?P<minus>-(?=[A-Za-z"(]))
      | (?P<word>[^\s"=!<>:()]+(?:"(?:[^"\\]|\\.)*"[^\s"=!<>:()]*)*)
    )""",
    re.VERBOSE,
)


class UnsupportedFilterError(ValueError):
    """The filter uses something this emulator does not implement, or is not well formed."""


@dataclass(frozen=True)
class Comparison:
    path: tuple[str, ...]  # ("labels", "saga_id"), ("severity",), ("jsonPayload", "a", "b")
    op: str
    value: str  # "*" with op ":" tests presence
    quoted: bool

    def matches(self, entry: Mapping[str, Any]) -> bool:
        found, actual = _lookup(entry, self.path)
        if not found or actual is None:
            return False
        if self.op == ":" and self.value == "*" and not self.quoted:
            return True
        field = ".".join(self.path)
        if field == "severity":
            return _compare(self.op, _severity_number(actual), _severity_number(self.value, field))
        if field in TIME_FIELDS:
            return _compare(self.op, _nanos(str(actual)), _time_value(self.value, field))
        if isinstance(actual, Mapping | list):
            return False
        return _compare_scalar(self.op, actual, self.value)


@dataclass(frozen=True)
class Filter:
    comparisons: tuple[Comparison, ...]

    def matches(self, entry: Mapping[str, Any]) -> bool:
        return all(c.matches(entry) for c in self.comparisons)


def parse_filter(text: str) -> Filter:
    """Raises ``UnsupportedFilterError`` naming the first thing not supported."""
    if len(text) > MAX_FILTER_CHARS:
        raise UnsupportedFilterError(f"filter is longer than {MAX_FILTER_CHARS} characters")
    tokens = _tokens(text)
    comparisons: list[Comparison] = []
    i = 0
    while i < len(tokens):
        kind, value = tokens[i]
        if kind == "word" and value == "AND":
            if not comparisons or i + 1 >= len(tokens) or tokens[i + 1] == ("word", "AND"):
                raise UnsupportedFilterError("AND needs a comparison on each side")
            i += 1
            continue
        if len(tokens) - i == 2 and tokens[i + 1][0] == "op":
            raise UnsupportedFilterError(f"a value is missing after {value} {tokens[i + 1][1]}")
        if len(tokens) - i < 3 or tokens[i + 1][0] != "op":
            raise UnsupportedFilterError(f"unsupported global restriction {value!r} (use FIELD OP VALUE)")
        path = _field_path(kind, value)
        op = tokens[i + 1][1]
        if op not in OPERATORS:
            raise UnsupportedFilterError(f"unsupported operator {op!r} (regular expressions)")
        value_kind, raw = tokens[i + 2]
        if value_kind not in ("string", "word"):
            raise UnsupportedFilterError(f"unsupported value {raw!r} after {'.'.join(path)} {op}")
        quoted = value_kind == "string"
        comparison = Comparison(path, op, _unquote(raw) if quoted else raw, quoted)
        _check_value(comparison)
        comparisons.append(comparison)
        i += 3
    return Filter(tuple(comparisons))


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text.rstrip()):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise UnsupportedFilterError(f"cannot parse the filter at column {position + 1}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "paren":
            raise UnsupportedFilterError("unsupported parentheses (only comparisons joined by AND)")
        if kind == "minus":
            raise UnsupportedFilterError("unsupported negation '-'")
        if kind == "word" and value in _REFUSED_WORDS:
            raise UnsupportedFilterError(f"unsupported {_REFUSED_WORDS[value]}")
        if kind == "word" and text[match.end() : match.end() + 1] == "(":
            raise UnsupportedFilterError(f"unsupported function {value}()")
        tokens.append((kind, value))
        position = match.end()
    return tokens


def _field_path(kind: str, text: str) -> tuple[str, ...]:
    if kind != "word":
        raise UnsupportedFilterError(f"unsupported global restriction {text} (use FIELD OP VALUE)")
    parts = tuple(_unquote(p) if p.startswith('"') else p for p in _split_path(text))
    field = ".".join(parts)
    if field in SCALAR_FIELDS or field in TIME_FIELDS:
        return parts
    for prefix in MAP_PREFIXES:
        depth = len(prefix.split("."))
        if parts[:depth] == tuple(prefix.split(".")) and len(parts) > depth:
            if prefix != "jsonPayload" and len(parts) != depth + 1:
                break
            return parts
    raise UnsupportedFilterError(f"unsupported field {field!r}")


def _split_path(text: str) -> list[str]:
    return [m.group(0) for m in re.finditer(r'"(?:[^"\\]|\\.)*"|[^.]+', text)]


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def _check_value(comparison: Comparison) -> None:
    field = ".".join(comparison.path)
    if comparison.op == ":" and comparison.value == "*" and not comparison.quoted:
        return
    if field == "severity":
        _severity_number(comparison.value, field)
    elif field in TIME_FIELDS:
        _time_value(comparison.value, field)


def _lookup(entry: Mapping[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    current: Any = entry
    for key in path:
        if not isinstance(current, Mapping) or key not in current:
            return False, None
        current = current[key]
    return True, current


def _severity_number(value: Any, field: str | None = None) -> int:
    text = str(value).upper()
    if text in SEVERITY_NUMBERS:
        return SEVERITY_NUMBERS[text]
    if text.isdigit():
        return int(text)
    if field is None:
        return 0
    raise UnsupportedFilterError(f"{field}: {value!r} is not a severity ({', '.join(SEVERITIES)})")


def _nanos(text: str) -> int:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromJsonString(text)
    return int(stamp.ToNanoseconds())


def _time_value(text: str, field: str) -> int:
    try:
        return _nanos(text)
    except ValueError:
        raise UnsupportedFilterError(f"{field}: {text!r} is not an RFC 3339 time") from None


def _compare_scalar(op: str, actual: Any, value: str) -> bool:
    number = _number(value)
    field_number = actual if isinstance(actual, int | float) and not isinstance(actual, bool) else None
    if field_number is None and isinstance(actual, str):
        field_number = _number(actual)
    if number is not None and field_number is not None and op != ":":
        return _compare(op, field_number, number)
    text = _text(actual)
    if op == ":":
        return value.lower() in text.lower()
    return _compare(op, text, value)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _compare(op: str, left: Any, right: Any) -> bool:
    if op in ("=", ":"):
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op == ">":
        return bool(left > right)
    if op == ">=":
        return bool(left >= right)
    if op == "<":
        return bool(left < right)
    return bool(left <= right)
