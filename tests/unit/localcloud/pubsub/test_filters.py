from __future__ import annotations

import pytest
from google.api_core import exceptions as gexc

from localcloud.pubsub.filters import compile_filter

CASES = [
    ('attributes.kind = "order"', {"kind": "order"}, True),
    ('attributes.kind = "order"', {"kind": "refund"}, False),
    ('attributes.kind != "order"', {}, True),
    ("attributes:kind", {"kind": ""}, True),
    ("NOT attributes:kind", {"kind": "x"}, False),
    ('-attributes.kind = "x"', {"kind": "y"}, True),
    ('hasPrefix(attributes.region, "eu-")', {"region": "eu-west1"}, True),
    ('hasPrefix(attributes.region, "eu-")', {}, False),
    ("attributes:a AND (attributes:b OR attributes:c)", {"a": "1", "c": "1"}, True),
    ("attributes:a AND (attributes:b OR attributes:c)", {"b": "1", "c": "1"}, False),
    ('attributes."dotted.key" = "v"', {"dotted.key": "v"}, True),
    ("", {}, True),
]


@pytest.mark.parametrize(("expression", "attributes", "expected"), CASES)
def test_filter_matches_attributes_like_pubsub(
    expression: str, attributes: dict[str, str], expected: bool
) -> None:
    assert compile_filter(expression)(attributes) is expected


@pytest.mark.parametrize(
    "expression",
    [
        "attributes.kind = order",
        "attributes:",
        'attributes.a = "x" AND',
        "(attributes:a",
        "data = 1",
        "x" * 300,
    ],
)
def test_malformed_filter_is_invalid_argument_naming_the_field(expression: str) -> None:
    with pytest.raises(gexc.InvalidArgument, match=r"\[filter\]"):
        compile_filter(expression)
