"""Variables: lookups through parent scopes, writes into nested values, and the measured size the memory
limit reads, kept current without measuring every variable again."""

from __future__ import annotations

from typing import Any

import pytest

from localcloud.workflows.engine.scope import Scope
from localcloud.workflows.lang.errors import WorkflowError
from localcloud.workflows.lang.values import size_of


def measured_fresh(scope: Scope) -> int:
    return sum(size_of(value) for value in scope.vars.values())


def test_a_write_goes_to_the_scope_that_owns_the_variable() -> None:
    outer = Scope(values={"a": 1})
    inner = Scope(outer)
    inner.set("a", 2)
    inner.set("b", 3)
    assert outer.vars == {"a": 2}
    assert inner.vars == {"b": 3}
    assert inner.owner("a") is outer and inner.owner("zz") is None


def test_store_creates_the_missing_maps_on_the_way() -> None:
    scope = Scope()
    scope.store("a", ["b", "c"], 1)
    assert scope.vars == {"a": {"b": {"c": 1}}}


@pytest.mark.parametrize(
    ("keys", "value"),
    [
        (["k"], "a longer string than before"),
        (["new"], [1, 2, 3]),
        (["list", 1], {"x": "y"}),
        (["k", "deeper"], 5),
        (["list", 0, "inside"], True),
    ],
)
def test_the_measured_size_stays_equal_to_a_fresh_measurement_after_a_store(
    keys: list[Any], value: Any
) -> None:
    scope = Scope(values={"v": {"k": "short", "list": [{"a": 1}, 2]}, "w": "other"})
    scope.memory()  # measure once, so the store must keep the size current
    scope.store("v", keys, value)
    assert scope.memory() == measured_fresh(scope)


@pytest.mark.parametrize(
    ("keys", "tag"),
    [
        ([1], "TypeError"),  # a map key must be a string
        (["list", "x"], "TypeError"),  # a list index must be an integer
        (["list", 5], "IndexError"),
        (["list", 1, "x"], "TypeError"),  # 2 is not a container
    ],
)
def test_a_store_into_the_wrong_kind_of_value_is_a_tagged_error(keys: list[Any], tag: str) -> None:
    scope = Scope(values={"v": {"list": [{"a": 1}, 2]}})
    with pytest.raises(WorkflowError) as raised:
        scope.store("v", keys, 0)
    assert tag in raised.value.tags
