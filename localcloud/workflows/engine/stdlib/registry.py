"""The one table of built-in functions: each is declared with its signature where it is defined."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from localcloud.workflows.lang.errors import WorkflowError

REQUIRED: Any = object()


@dataclass(frozen=True)
class Builtin:
    """``fn(host, *args)``; args arrive positionally in ``params`` order, optional ones filled with their
    default. ``blocking`` functions may only be called from a ``call`` step, never inside an expression."""

    name: str
    params: tuple[str, ...]
    defaults: dict[str, Any] = field(hash=False)
    fn: Callable[..., Any] = field(hash=False)
    blocking: bool = False
    is_async: bool = False

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(p for p in self.params if p not in self.defaults)

    def bind_positional(self, args: list[Any]) -> list[Any]:
        if len(args) < len(self.required) or len(args) > len(self.params):
            raise WorkflowError.tagged(
                "TypeError", f"{self.name}: expected {self._arity()} arguments, got {len(args)}"
            )
        return list(args) + [self.defaults[p] for p in self.params[len(args) :]]

    def bind_named(self, args: dict[str, Any]) -> list[Any]:
        unknown = [k for k in args if k not in self.params]
        if unknown:
            raise WorkflowError.tagged("TypeError", f"{self.name}: unexpected argument {unknown[0]!r}")
        missing = [p for p in self.required if p not in args]
        if missing:
            raise WorkflowError.tagged("TypeError", f"{self.name}: missing required argument {missing[0]!r}")
        return [args[p] if p in args else self.defaults[p] for p in self.params]

    def _arity(self) -> str:
        low, high = len(self.required), len(self.params)
        return str(low) if low == high else f"{low} to {high}"


BUILTINS: dict[str, Builtin] = {}


def builtin(
    name: str, *, blocking: bool = False, **defaults: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare ``fn(host, p1, p2=default, ...)`` as the built-in ``name``; the signature is read from the
    function (its parameters after ``host``); ``defaults`` rename parameters that clash with Python words
    (``json_``)."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(fn)
        params: list[str] = []
        values: dict[str, Any] = {}
        for index, parameter in enumerate(signature.parameters.values()):
            if index == 0:
                continue
            public = parameter.name.rstrip("_")
            params.append(public)
            if parameter.default is not inspect.Parameter.empty:
                values[public] = parameter.default
        BUILTINS[name] = Builtin(
            name, tuple(params), values, fn, blocking=blocking, is_async=inspect.iscoroutinefunction(fn)
        )
        return fn

    return register


# Named values that are not functions, e.g. ``${retry.default_backoff}``, ``${http.default_retry}``.
CONSTANTS: dict[str, Any] = {}
