"""Errors of the Workflows engine.

``WorkflowError`` is a runtime error *inside* an execution: its ``payload`` is exactly what an ``except``
block binds with ``as: e`` — a map with ``tags`` and ``message`` (plus ``code``, ``headers``, ``body`` for
``HttpError``) for built-in errors, or whatever value a ``raise`` step raised (a string or any map).

``DeployError`` is what the real service answers when a workflow is deployed with a mistake; it names the
step, the line and the column.
"""

from __future__ import annotations

from typing import Any


class WorkflowError(Exception):
    def __init__(self, payload: Any) -> None:
        super().__init__(_describe(payload))
        self.payload = payload
        # Set by the interpreter when the error leaves a step: innermost first,
        # ``{"step", "routine", "line", "column"}``; and a human-readable trace of it.
        self.stack: list[dict[str, Any]] | None = None
        self.context: str | None = None

    @classmethod
    def tagged(cls, tag: str, message: str, **extra: Any) -> WorkflowError:
        """A built-in error, e.g. ``WorkflowError.tagged("KeyError", "key not found: x")``."""
        return cls({"message": message, "tags": [tag], **extra})

    @property
    def tags(self) -> list[str]:
        if isinstance(self.payload, dict):
            tags = self.payload.get("tags")
            if isinstance(tags, list):
                return [t for t in tags if isinstance(t, str)]
        return []


class DeployError(ValueError):
    def __init__(
        self,
        message: str,
        *,
        step: str | None = None,
        line: int | None = None,
        column: int | None = None,
        source_line: str | None = None,
    ) -> None:
        self.message = message
        self.step = step
        self.line = line
        self.column = column
        self.source_line = source_line
        super().__init__(self.render())

    def render(self) -> str:
        where = []
        if self.step:
            where.append(f"step '{self.step}'")
        if self.line is not None:
            where.append(f"line {self.line}" + (f", column {self.column}" if self.column is not None else ""))
        head = (", ".join(where) + ": " if where else "") + self.message
        if self.source_line is not None and self.column is not None:
            return f"{head}\n  {self.source_line}\n  {' ' * max(0, self.column - 1)}^"
        return head


def _describe(payload: Any) -> str:
    if isinstance(payload, dict):
        tags = payload.get("tags")
        message = payload.get("message")
        if tags or message:
            return f"{tags}: {message}"
    return repr(payload)
