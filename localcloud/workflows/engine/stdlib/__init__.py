"""The Workflows standard library. ``BUILTINS`` is the one table of functions, each declared (with its
signature) where it is defined; ``CONSTANTS`` holds named values such as ``retry.default_backoff``."""

from __future__ import annotations

from localcloud.workflows.engine.stdlib import data, helpers, http, system, timefmt
from localcloud.workflows.engine.stdlib.registry import BUILTINS, CONSTANTS, Builtin

HTTP_FUNCTIONS = http.HTTP_FUNCTIONS
EXTERNAL_FUNCTIONS = frozenset({"events.await_callback"})
# The helpers usable without a module prefix.
HELPERS = frozenset({"default", "keys", "len", "int", "double", "string", "if", "get_type"})

__all__ = [
    "BUILTINS",
    "CONSTANTS",
    "EXTERNAL_FUNCTIONS",
    "HELPERS",
    "HTTP_FUNCTIONS",
    "Builtin",
    "data",
    "helpers",
    "system",
    "timefmt",
]
