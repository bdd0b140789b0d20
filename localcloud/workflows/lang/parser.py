"""Pratt parser for Workflows expressions, with ONE binding-power table.

Precedence, highest first (https://cloud.google.com/workflows/docs/reference/syntax/datatypes):
``()`` > ``.`` > ``[]`` > ``not`` > unary ``-`` > ``* / // %`` > ``+ -`` > ``< <= >= > == != in`` > ``and`` > ``or``.
All binary operators are left-associative.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from localcloud.workflows.lang import ast
from localcloud.workflows.lang.lexer import ExpressionSyntaxError, Token, tokenize
from localcloud.workflows.lang.values import INT_MAX

# How tightly each operator binds: token kind -> binding power. An infix or postfix operator (a binary
# operator, ``[``, ``.``, ``(``) binds the expression on its left when its power is above the power of the
# operator that is parsing that expression. The prefix operators ``not`` and ``unary-`` (the key for a
# leading ``-``) parse their operand with their power. The right operand of a binary operator is parsed
# with the operator's own power, which makes every binary operator left-associative.
BINDING_POWER: dict[str, int] = {
    "or": 10,
    "and": 20,
    "<": 30,
    "<=": 30,
    ">=": 30,
    ">": 30,
    "==": 30,
    "!=": 30,
    "in": 30,
    "+": 40,
    "-": 40,
    "*": 50,
    "/": 50,
    "//": 50,
    "%": 50,
    "unary-": 60,
    "not": 70,
    "[": 80,
    ".": 90,
    "(": 100,
}
BINARY = frozenset({"or", "and", "<", "<=", ">=", ">", "==", "!=", "in", "+", "-", "*", "/", "//", "%"})
POSTFIX = frozenset({"[", ".", "("})  # index, member, call

T = TypeVar("T")

MAX_EXPRESSION_LENGTH = 400  # characters (https://cloud.google.com/workflows/quotas)


def parse_expression(source: str) -> ast.Expr:
    """Parse the text inside ``${ }``. Raises ``ExpressionSyntaxError`` with the offset of the mistake."""
    parser = _Parser(tokenize(source))
    expr = parser.expression(0)
    token = parser.peek()
    if token.kind != "eof":
        raise ExpressionSyntaxError(f"unexpected {token.text!r}", token.offset)
    return expr


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def take(self) -> Token:
        token = self.tokens[self.pos]
        if token.kind != "eof":
            self.pos += 1
        return token

    def expect(self, kind: str) -> Token:
        token = self.take()
        if token.kind != kind:
            found = "end of expression" if token.kind == "eof" else repr(token.text)
            raise ExpressionSyntaxError(f"expected {kind!r}, found {found}", token.offset)
        return token

    def expression(self, rbp: int) -> ast.Expr:
        left = self.prefix(self.take())
        while True:
            token = self.peek()
            lbp = BINDING_POWER[token.kind] if token.kind in BINARY or token.kind in POSTFIX else 0
            if lbp <= rbp:
                return left
            self.take()
            left = self.infix(token, left, lbp)

    def prefix(self, token: Token) -> ast.Expr:
        kind = token.kind
        if kind == "int":
            value = token.value
            assert isinstance(value, int)
            if value > INT_MAX:
                raise ExpressionSyntaxError("integer literal out of range", token.offset)
            return ast.Literal(token.offset, value)
        if kind in ("double", "string"):
            return ast.Literal(token.offset, token.value)
        if kind == "true":
            return ast.Literal(token.offset, True)
        if kind == "false":
            return ast.Literal(token.offset, False)
        if kind == "null":
            return ast.Literal(token.offset, None)
        if kind == "name":
            return ast.Name(token.offset, token.text)
        if kind == "-":
            following = self.peek()
            if following.kind == "int" and following.value == INT_MAX + 1:
                self.take()
                return ast.Literal(token.offset, -(INT_MAX + 1))
            operand = self.expression(BINDING_POWER["unary-"])
            if isinstance(operand, ast.Literal) and type(operand.value) in (int, float):
                return ast.Literal(token.offset, -operand.value)
            return ast.Unary(token.offset, "-", operand)
        if kind == "not":
            return ast.Unary(token.offset, "not", self.expression(BINDING_POWER["not"]))
        if kind == "(":
            inner = self.expression(0)
            self.expect(")")
            return inner
        if kind == "[":
            return ast.ListLit(token.offset, self.separated("]", lambda: self.expression(0)))
        if kind == "{":
            return ast.MapLit(token.offset, self.separated("}", self.entry))
        if kind == "eof":
            raise ExpressionSyntaxError("unexpected end of expression", token.offset)
        raise ExpressionSyntaxError(f"unexpected {token.text!r}", token.offset)

    def separated(self, close: str, item: Callable[[], T]) -> tuple[T, ...]:
        """Items separated by commas up to ``close`` (no trailing comma), which is consumed."""
        items: list[T] = []
        if self.peek().kind != close:
            items.append(item())
            while self.peek().kind == ",":
                self.take()
                items.append(item())
        self.expect(close)
        return tuple(items)

    def entry(self) -> tuple[ast.Expr, ast.Expr]:
        key = self.expression(0)
        self.expect(":")
        return key, self.expression(0)

    def infix(self, token: Token, left: ast.Expr, lbp: int) -> ast.Expr:
        kind = token.kind
        if kind == ".":
            name = self.take()
            if name.kind not in ("name", "in", "and", "or", "not", "true", "false", "null"):
                raise ExpressionSyntaxError("expected a name after '.'", name.offset)
            return ast.Member(token.offset, left, name.text)
        if kind == "[":
            index = self.expression(0)
            self.expect("]")
            return ast.Index(token.offset, left, index)
        if kind == "(":
            function = ast.dotted_name(left)
            if function is None:
                raise ExpressionSyntaxError("only named functions can be called", token.offset)
            return ast.Call(left.offset, function, self.separated(")", lambda: self.expression(0)))
        right = self.expression(lbp)
        return ast.Binary(token.offset, kind, left, right)
