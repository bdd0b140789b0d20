"""The tokens of Workflows expressions (https://cloud.google.com/workflows/docs/reference/syntax/expressions)."""

from __future__ import annotations

import pytest

from localcloud.workflows.lang.lexer import ExpressionSyntaxError, tokenize


def kinds(source: str) -> list[str]:
    return [token.kind for token in tokenize(source)]


def test_every_token_list_ends_with_eof_at_the_end_of_the_text() -> None:
    tokens = tokenize("a + 1")
    assert tokens[-1].kind == "eof"
    assert tokens[-1].offset == 5
    assert kinds("") == ["eof"]


def test_tokens_carry_their_offset_in_the_text() -> None:
    assert [(t.kind, t.offset) for t in tokenize("  x  ==  'y'")] == [
        ("name", 2),
        ("==", 5),
        ("string", 9),
        ("eof", 12),
    ]


@pytest.mark.parametrize(
    ("source", "kind", "value"),
    [
        ("42", "int", 42),
        ("1.5", "double", 1.5),
        (".5", "double", 0.5),
        ("1e3", "double", 1000.0),
        ("2.5E-1", "double", 0.25),
        ("7e+2", "double", 700.0),
    ],
)
def test_numbers_are_ints_unless_they_have_a_fraction_or_an_exponent(
    source: str, kind: str, value: object
) -> None:
    (token, _) = tokenize(source)
    assert (token.kind, token.value, token.text) == (kind, value, source)
    assert type(token.value) is type(value)


def test_an_e_without_digits_after_it_ends_the_number() -> None:
    assert kinds("1 e") == ["int", "name", "eof"]
    assert [t.text for t in tokenize("1.e")][:2] == ["1", "."]


def test_keywords_are_recognised_in_their_three_spellings() -> None:
    assert kinds("and AND or OR not NOT in") == ["and", "and", "or", "or", "not", "not", "in", "eof"]
    assert kinds("true True TRUE false False FALSE null") == [
        "true",
        "true",
        "true",
        "false",
        "false",
        "false",
        "null",
        "eof",
    ]
    assert kinds("Null andy") == ["name", "name", "eof"]


def test_the_longest_operator_wins() -> None:
    assert kinds("a//b<=c>=d==e!=f") == [
        "name",
        "//",
        "name",
        "<=",
        "name",
        ">=",
        "name",
        "==",
        "name",
        "!=",
        "name",
        "eof",
    ]


def test_strings_in_either_quote_decode_their_escapes() -> None:
    (double, single, _) = tokenize(r'"a\n\t\"b" ' + r"'it\'s \u00e9\/'")
    assert double.value == 'a\n\t"b'
    assert single.value == "it's é/"
    assert double.text == r'"a\n\t\"b"'


def test_a_quote_of_the_other_kind_is_just_a_character() -> None:
    assert tokenize('"it\'s"')[0].value == "it's"


@pytest.mark.parametrize(
    ("source", "message", "offset"),
    [
        ("a # b", "unexpected character '#'", 2),
        ("'abc", "unterminated string", 0),
        ("x + 'ab\\", "unterminated string", 4),
        ("'a\\qb'", "invalid escape \\q", 2),
        ("'\\u12g4'", "invalid \\u escape", 1),
        ("12abc", "invalid number '12a'", 0),
        ("1 + 3x", "invalid number '3x'", 4),
    ],
)
def test_a_mistake_names_what_is_wrong_and_where(source: str, message: str, offset: int) -> None:
    with pytest.raises(ExpressionSyntaxError) as raised:
        tokenize(source)
    assert (raised.value.message, raised.value.offset) == (message, offset)
    assert isinstance(raised.value, ValueError)
