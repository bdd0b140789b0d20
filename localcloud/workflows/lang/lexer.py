"""Tokens of a Workflows expression (the text between ``${`` and the closing ``}``).

https://cloud.google.com/workflows/docs/reference/syntax/expressions
"""

from __future__ import annotations

from dataclasses import dataclass

KEYWORDS = {
    "and": "and",
    "AND": "and",
    "or": "or",
    "OR": "or",
    "not": "not",
    "NOT": "not",
    "in": "in",
    "true": "true",
    "True": "true",
    "TRUE": "true",
    "false": "false",
    "False": "false",
    "FALSE": "false",
    "null": "null",
}

# Longest first, so ``//`` wins over ``/`` and ``<=`` over ``<``.
OPERATORS = (
    "//",
    "<=",
    ">=",
    "==",
    "!=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "<",
    ">",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    ".",
)

ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "\\": "\\", '"': '"', "'": "'", "/": "/"}


class ExpressionSyntaxError(ValueError):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass(frozen=True)
class Token:
    kind: str  # "int", "double", "string", "name", "eof", a keyword, or an operator's text
    text: str
    offset: int
    value: object = None


def tokenize(source: str) -> list[Token]:
    """The tokens of ``source``, ending with an ``eof`` token. Raises ``ExpressionSyntaxError`` with the
    offset of the first character that cannot start or continue a token."""
    tokens: list[Token] = []
    i = 0
    n = len(source)
    while i < n:
        c = source[i]
        if c in " \t\r\n":
            i += 1
        elif c.isdigit() or (c == "." and i + 1 < n and source[i + 1].isdigit()):
            i = _number(source, i, tokens)
        elif c.isalpha() or c == "_":
            start = i
            while i < n and (source[i].isalnum() or source[i] == "_"):
                i += 1
            text = source[start:i]
            tokens.append(Token(KEYWORDS.get(text, "name"), text, start, text))
        elif c in "\"'":
            i = _string(source, i, tokens)
        else:
            op = next((op for op in OPERATORS if source.startswith(op, i)), None)
            if op is None:
                raise ExpressionSyntaxError(f"unexpected character {c!r}", i)
            tokens.append(Token(op, op, i))
            i += len(op)
    tokens.append(Token("eof", "", n))
    return tokens


def _digits(source: str, i: int) -> int:
    while i < len(source) and source[i].isdigit():
        i += 1
    return i


def _number(source: str, start: int, tokens: list[Token]) -> int:
    """An integer or a double (``1``, ``1.5``, ``.5``, ``1e3``, ``2.5E-1``) at ``start``; returns its end."""
    n = len(source)
    i = _digits(source, start)
    is_double = False
    if i < n and source[i] == "." and i + 1 < n and source[i + 1].isdigit():
        is_double = True
        i = _digits(source, i + 1)
    if i < n and source[i] in "eE":
        j = i + 1
        if j < n and source[j] in "+-":
            j += 1
        if j < n and source[j].isdigit():
            is_double = True
            i = _digits(source, j)
    text = source[start:i]
    if i < n and (source[i].isalpha() or source[i] == "_"):
        raise ExpressionSyntaxError(f"invalid number {source[start : i + 1]!r}", start)
    tokens.append(
        Token("double" if is_double else "int", text, start, float(text) if is_double else int(text))
    )
    return i


def _string(source: str, start: int, tokens: list[Token]) -> int:
    """A string in the quotes found at ``start``, with its escapes decoded; returns the end."""
    quote = source[start]
    n = len(source)
    i = start + 1
    chars: list[str] = []
    while True:
        if i >= n:
            raise ExpressionSyntaxError("unterminated string", start)
        ch = source[i]
        if ch == quote:
            i += 1
            break
        if ch != "\\":
            chars.append(ch)
            i += 1
            continue
        if i + 1 >= n:
            raise ExpressionSyntaxError("unterminated string", start)
        esc = source[i + 1]
        if esc in ESCAPES:
            chars.append(ESCAPES[esc])
            i += 2
        elif esc == "u" and i + 6 <= n:
            try:
                chars.append(chr(int(source[i + 2 : i + 6], 16)))
            except ValueError:
                raise ExpressionSyntaxError("invalid \\u escape", i) from None
            i += 6
        else:
            raise ExpressionSyntaxError(f"invalid escape \\{esc}", i)
    tokens.append(Token("string", source[start:i], start, "".join(chars)))
    return i
