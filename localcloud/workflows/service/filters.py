"""The ``filter`` and ``orderBy`` of ``ListExecutions``
(https://cloud.google.com/workflows/docs/reference/executions/rest/v1/projects.locations.workflows.executions/list).

``filter`` is the AIP-160 subset the real API takes (https://google.aip.dev/160): comparisons
(``= != < > <= >= :``) on ``state``, ``executionID``, ``workflowRevisionID``, ``startTime``, ``endTime``
(RFC 3339), ``duration`` (``"10s"``) and ``labels.KEY``; ``labels:KEY`` tests that a label is there.
Comparisons combine with AND (or juxtaposition), OR (which binds tighter than AND), NOT and
parentheses. A field that is not set (the end of an active execution) only satisfies ``!=``. An unknown
field, state, time or duration is INVALID_ARGUMENT.

``orderBy`` is one of ``executionID``, ``startTime``, ``endTime``, ``duration``, ``state``,
``workflowRevisionID``, optionally followed by ``asc`` or ``desc``; active executions sort last by end
time and duration.

The filter is compiled once into a predicate on ``ExecutionRecord``; ``plan_filter`` also names the
``labels.KEY="VALUE"`` comparisons ANDed at the top level, so a listing can start from the label index.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable
from typing import Any

from google.api_core import exceptions as gexc

from localcloud.workflows.service.records import ExecutionRecord, State

Predicate = Callable[[ExecutionRecord], bool]
Comparison = Callable[[str, str, str], Callable[[Any], bool]]
_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<op><=|>=|!=|=|<|>|:|\(|\))|(?P<word>[^\s=<>!:()"]+))'
)
_FILTER_FIELDS = {
    "state",
    "executionid",
    "workflowrevisionid",
    "starttime",
    "endtime",
    "duration",
    "labels",
    "label",
}


def parse_filter(text: str) -> Predicate:
    """An AIP-160 subset: comparisons (``= != < > <= >= :``) on state, executionID, workflowRevisionID,
    startTime, endTime, duration and ``labels.KEY``, combined with AND, OR (binds tighter), NOT and
    parentheses. Unknown fields are INVALID_ARGUMENT, as in the real API."""
    return plan_filter(text)[0]


def plan_filter(text: str) -> tuple[Predicate, list[tuple[str, str]]]:
    """``parse_filter``, plus the ``labels.KEY="VALUE"`` comparisons every match must satisfy (those ANDed
    at the top level), which let a listing start from the label index."""
    tokens = _tokenize(text)
    if not tokens:
        return (lambda _: True), []
    parser = _FilterParser(tokens)
    predicate = parser.expression(top=True)
    if parser.position != len(tokens):
        raise gexc.InvalidArgument(f"invalid filter {text!r}: unexpected {tokens[parser.position][1]!r}")
    return predicate, parser.required_labels


def compile_filter(text: str, comparison: Comparison) -> Callable[[Any], bool]:
    """A filter of the same grammar over other resources: ``comparison(field, op, value)`` makes the
    predicate of one comparison (and raises INVALID_ARGUMENT for a field it does not know)."""
    tokens = _tokenize(text)
    if not tokens:
        return lambda _: True
    parser = _FilterParser(tokens, comparison)
    predicate = parser.expression(top=True)
    if parser.position != len(tokens):
        raise gexc.InvalidArgument(f"invalid filter {text!r}: unexpected {tokens[parser.position][1]!r}")
    return predicate


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise gexc.InvalidArgument(f"invalid filter {text!r} at character {position}")
        kind = match.lastgroup or "word"
        value = match.group(kind)
        if kind == "str":
            value = json.loads(value)
        tokens.append((kind, value))
        position = match.end()
        while position < len(text) and text[position].isspace():
            position += 1
    return tokens


class _FilterParser:
    def __init__(self, tokens: list[tuple[str, str]], comparison: Comparison | None = None) -> None:
        self.tokens = tokens
        self.comparison: Comparison = comparison or _comparison
        self.position = 0
        self._label_equalities: dict[int, tuple[str, str]] = {}  # id(predicate) -> (key, value)
        self.required_labels: list[tuple[str, str]] = []

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _next(self) -> tuple[str, str]:
        token = self._peek()
        if token is None:
            raise gexc.InvalidArgument("invalid filter: unexpected end")
        self.position += 1
        return token

    def expression(self, *, top: bool = False) -> Predicate:
        terms = [self.disjunction()]
        while True:
            token = self._peek()
            if token is None or token == ("op", ")"):
                break
            if token == ("word", "AND"):
                self.position += 1
            terms.append(self.disjunction())
        if top:
            self.required_labels = [
                self._label_equalities[id(t)] for t in terms if id(t) in self._label_equalities
            ]
        if len(terms) == 1:
            return terms[0]
        return lambda r: all(t(r) for t in terms)

    def disjunction(self) -> Predicate:
        options = [self.factor()]
        while self._peek() == ("word", "OR"):
            self.position += 1
            options.append(self.factor())
        return options[0] if len(options) == 1 else (lambda r: any(o(r) for o in options))

    def factor(self) -> Predicate:
        token = self._next()
        if token == ("word", "NOT"):
            inner = self.factor()
            return lambda r: not inner(r)
        if token == ("op", "("):
            inner = self.expression()
            if self._next() != ("op", ")"):
                raise gexc.InvalidArgument("invalid filter: missing ')'")
            return inner
        if token[0] != "word":
            raise gexc.InvalidArgument(f"invalid filter: unexpected {token[1]!r}")
        field_name = token[1]
        op = self._next()
        if op[0] != "op" or op[1] in ("(", ")"):
            raise gexc.InvalidArgument(f"invalid filter: expected an operator after {field_name!r}")
        value = self._next()
        if value[0] == "op":
            raise gexc.InvalidArgument(f"invalid filter: expected a value after {field_name} {op[1]}")
        predicate = self.comparison(field_name, op[1], value[1])
        head, _, key = field_name.partition(".")
        if op[1] == "=" and key and head.lower() in ("labels", "label"):
            self._label_equalities[id(predicate)] = (key, value[1])
        return predicate


def _comparison(field_name: str, op: str, value: str) -> Predicate:
    head, _, key = field_name.partition(".")
    lowered = head.lower()
    if lowered not in _FILTER_FIELDS:
        raise gexc.InvalidArgument(f"invalid filter: field {field_name!r} is not supported")
    if lowered in ("labels", "label"):
        if not key:
            if op != ":":
                raise gexc.InvalidArgument('invalid filter: use labels.KEY="value" or labels:KEY')
            return lambda r: value in r.labels
        if op == ":":
            return lambda r: key in r.labels
        return compare_with(lambda r: r.labels.get(key), op, value)
    if lowered == "state":
        wanted = value.upper()
        if wanted not in State.__members__:
            raise gexc.InvalidArgument(f"invalid filter: unknown state {value!r}")
        return compare_with(lambda r: State(r.state).name, op, wanted)
    if lowered == "executionid":
        return compare_with(lambda r: r.execution_id, op, value)
    if lowered == "workflowrevisionid":
        return compare_with(lambda r: r.revision_id, op, value)
    if lowered == "duration":
        seconds = _parse_duration(value)
        return compare_with(lambda r: None if r.ended_at is None else r.ended_at - r.started_at, op, seconds)
    moment = parse_time(value)
    if lowered == "starttime":
        return compare_with(lambda r: r.started_at, op, moment)
    return compare_with(lambda r: r.ended_at, op, moment)


def compare_with(get: Callable[[Any], Any], op: str, wanted: Any) -> Callable[[Any], bool]:
    """``get(item) <op> wanted``; an item where ``get`` gives None only satisfies ``!=``."""

    def check(record: Any) -> bool:
        actual = get(record)
        if actual is None:
            return op == "!="
        if op in ("=", ":"):
            return bool(actual == wanted)
        if op == "!=":
            return bool(actual != wanted)
        if op == "<":
            return bool(actual < wanted)
        if op == ">":
            return bool(actual > wanted)
        if op == "<=":
            return bool(actual <= wanted)
        return bool(actual >= wanted)

    return check


def parse_time(value: str) -> float:
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise gexc.InvalidArgument(f"invalid filter: {value!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


def _parse_duration(value: str) -> float:
    try:
        return float(value.removesuffix("s"))
    except ValueError:
        raise gexc.InvalidArgument(f'invalid filter: {value!r} is not a duration such as "10s"') from None


_ORDER_FIELDS: dict[str, Callable[[ExecutionRecord], Any]] = {
    "executionid": lambda r: r.execution_id,
    "starttime": lambda r: (r.started_at, r.seq),
    "endtime": lambda r: (r.ended_at if r.ended_at is not None else float("inf"), r.seq),
    "duration": lambda r: (r.ended_at - r.started_at) if r.ended_at is not None else float("inf"),
    "state": lambda r: State(r.state).name,
    "workflowrevisionid": lambda r: r.revision_id,
}


def order_key(order_by: str) -> tuple[Callable[[ExecutionRecord], Any], bool] | None:
    """The sort key and whether it is descending; None when ``order_by`` is empty (newest first)."""
    parts = order_by.split()
    if not parts:
        return None
    if len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
        raise gexc.InvalidArgument(f"invalid order_by {order_by!r}")
    key = _ORDER_FIELDS.get(parts[0].lower())
    if key is None:
        raise gexc.InvalidArgument(f"invalid order_by: field {parts[0]!r} is not supported")
    return key, len(parts) == 2 and parts[1].lower() == "desc"
