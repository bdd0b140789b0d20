"""Subscription filters: the AIP-160 subset Pub/Sub accepts
(https://cloud.google.com/pubsub/docs/subscription-message-filter).

Supported: ``attributes.KEY = "v"``, ``attributes.KEY != "v"``, ``attributes:KEY``,
``hasPrefix(attributes.KEY, "p")``, ``NOT`` (or ``-``), ``AND``, ``OR`` and parentheses. A key is an
identifier or a quoted string. Filters are parsed once, when the subscription is created or updated; a
filter that does not parse raises ``InvalidArgument`` naming the ``filter`` field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from google.api_core import exceptions as gexc

MAX_FILTER_BYTES = 256

Predicate = Callable[[Mapping[str, str]], bool]

_TOKEN = re.compile(
    r"""\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<op>!=|=|:|\(|\)|,|-|\.)|(?P<word>[A-Za-z_][A-Za-z0-9_\-]*))"""
)


class FilterSyntaxError(ValueError):
    pass


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None:
            raise FilterSyntaxError(f"unexpected character at position {position}: {text[position:]!r}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "string":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append((kind, value))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.index = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, kind: str, value: str | None = None) -> str:
        token = self.peek()
        if token is None or token[0] != kind or (value is not None and token[1] != value):
            wanted = value or kind
            raise FilterSyntaxError(
                f"expected {wanted!r} but found {token[1] if token else 'end of filter'!r}"
            )
        self.index += 1
        return token[1]

    def at_word(self, word: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "word" and token[1] == word

    def parse(self) -> Predicate:
        predicate = self.disjunction()
        if self.peek() is not None:
            raise FilterSyntaxError(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return predicate

    def disjunction(self) -> Predicate:
        parts = [self.conjunction()]
        while self.at_word("OR"):
            self.index += 1
            parts.append(self.conjunction())
        if len(parts) == 1:
            return parts[0]
        return lambda attributes: any(part(attributes) for part in parts)

    def conjunction(self) -> Predicate:
        parts = [self.negation()]
        while self.at_word("AND"):
            self.index += 1
            parts.append(self.negation())
        if len(parts) == 1:
            return parts[0]
        return lambda attributes: all(part(attributes) for part in parts)

    def negation(self) -> Predicate:
        token = self.peek()
        if token is not None and (token == ("word", "NOT") or token == ("op", "-")):
            self.index += 1
            inner = self.negation()
            return lambda attributes: not inner(attributes)
        return self.primary()

    def key(self) -> str:
        token = self.peek()
        if token is not None and token[0] in ("word", "string"):
            self.index += 1
            return token[1]
        raise FilterSyntaxError("expected an attribute key")

    def primary(self) -> Predicate:
        token = self.peek()
        if token == ("op", "("):
            self.index += 1
            inner = self.disjunction()
            self.take("op", ")")
            return inner
        if token == ("word", "hasPrefix"):
            self.index += 1
            self.take("op", "(")
            self.take("word", "attributes")
            self.take("op", ".")
            key = self.key()
            self.take("op", ",")
            prefix = self.take("string")
            self.take("op", ")")
            return lambda attributes: key in attributes and attributes[key].startswith(prefix)
        self.take("word", "attributes")
        operator = self.peek()
        if operator == ("op", ":"):
            self.index += 1
            key = self.key()
            return lambda attributes: key in attributes
        self.take("op", ".")
        key = self.key()
        operator = self.peek()
        if operator == ("op", "="):
            self.index += 1
            value = self.take("string")
            return lambda attributes: attributes.get(key) == value
        if operator == ("op", "!="):
            self.index += 1
            value = self.take("string")
            return lambda attributes: attributes.get(key) != value
        raise FilterSyntaxError(f"expected '=', '!=' after attributes.{key}")


def compile_filter(text: str) -> Predicate:
    """An empty filter matches everything."""
    if not text.strip():
        return lambda attributes: True
    if len(text.encode()) > MAX_FILTER_BYTES:
        raise gexc.InvalidArgument(f"Invalid [filter]: longer than {MAX_FILTER_BYTES} bytes")
    try:
        return _Parser(_tokenize(text)).parse()
    except FilterSyntaxError as error:
        raise gexc.InvalidArgument(f"Invalid [filter] {text!r}: {error}") from None
