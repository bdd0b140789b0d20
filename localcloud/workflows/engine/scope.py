"""Variables of a running routine, and the ``Frame`` that compiled expressions read them through."""

from __future__ import annotations

from typing import Any, Protocol

from localcloud.workflows.engine.host import Host
from localcloud.workflows.engine.operators import get_index
from localcloud.workflows.lang.values import is_int, size_of, type_error, type_name


class Scope:
    """Variables of one routine invocation, loop body or parallel branch; lookups walk up to the parent.

    ``sizes`` caches ``size_of`` of each variable for the memory limit, so a check measures only the
    variables written since the last one: every write goes through ``set``/``define`` (which forget the
    cached size) or, for a write inside a variable, through ``store``, which keeps ``sizes`` current by
    the difference the write makes. This relies on no
    two variables sharing a list or map, which Workflows' value semantics give (the interpreter copies
    wherever a value could be shared)."""

    __slots__ = ("parent", "sizes", "vars")

    def __init__(self, parent: Scope | None = None, values: dict[str, Any] | None = None) -> None:
        self.parent = parent
        self.vars: dict[str, Any] = values if values is not None else {}
        self.sizes: dict[str, int] = {}

    def owner(self, name: str) -> Scope | None:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.vars:
                return scope
            scope = scope.parent
        return None

    def set(self, name: str, value: Any) -> None:
        scope = self.owner(name) or self
        scope.vars[name] = value
        scope.sizes.pop(name, None)

    def define(self, name: str, value: Any) -> None:
        """Create or replace ``name`` in this scope itself (a loop variable)."""
        self.vars[name] = value
        self.sizes.pop(name, None)

    def store(self, target: str, keys: list[Any], value: Any) -> None:
        """``target[keys[0]][keys[1]]... = value``, creating the missing maps on the way."""
        owner = self.owner(target)
        if owner is None:
            owner = self
            container: Any = {}
            owner.define(target, container)
        else:
            container = owner.vars[target]
        # Keep the variable's measured size current by the difference this write makes; if the write
        # fails half-way the size stays forgotten and is measured again at the next check.
        known = owner.sizes.pop(target, None)
        delta = 0
        last_position = len(keys) - 1
        for position, key in enumerate(keys):
            last = position == last_position
            if isinstance(container, dict):
                if not isinstance(key, str):
                    raise type_error(f"map keys must be strings, got {type_name(key)}")
                if last:
                    if known is not None:
                        if key in container:
                            delta += size_of(value) - size_of(container[key])
                        else:
                            delta += len(key) + 3 + size_of(value)
                    container[key] = value
                else:
                    current = container.get(key)
                    if not isinstance(current, dict | list):
                        if known is not None:
                            delta += 2 - size_of(current) if key in container else len(key) + 5
                        current = container[key] = {}
                    container = current
            elif isinstance(container, list):
                if not is_int(key):
                    raise type_error(f"list index must be an integer, got {type_name(key)}")
                get_index(container, key)  # IndexError when out of range
                if last:
                    if known is not None:
                        delta += size_of(value) - size_of(container[key])
                    container[key] = value
                else:
                    container = container[key]
            else:
                raise type_error(f"cannot assign into a {type_name(container)}")
        if known is not None:
            owner.sizes[target] = known + delta

    def memory(self) -> int:
        """``size_of`` summed over every variable visible from here."""
        total = 0
        scope: Scope | None = self
        while scope is not None:
            sizes = scope.sizes
            if len(sizes) != len(scope.vars):
                for name, value in scope.vars.items():
                    if name not in sizes:
                        sizes[name] = size_of(value)
            for size in sizes.values():
                total += size
            scope = scope.parent
        return total


class Frame(Protocol):
    """What a compiled expression sees: the variables, the host for built-ins, and subworkflow calls."""

    scope: Scope
    host: Host

    async def call_routine(self, name: str, args: list[Any]) -> Any: ...
