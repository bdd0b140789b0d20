"""Structured logs in Cloud Logging's JSON shape, one object per line on stdout.

Cloud Run / Cloud Functions turn each line into a LogEntry: ``severity`` and ``message`` become the
entry's, ``logging.googleapis.com/labels`` its labels (``saga_id``, ``step``) and
``logging.googleapis.com/trace`` its trace (``projects/P/traces/T``). The saga context comes from a
``ContextVar`` set with ``log_context(...)``. Callers pass only non-secret fields; values of headers
are never logged anywhere in this library.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import json
import sys
from collections.abc import Iterator
from typing import Any, TextIO

_context: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("saga_log_context", default={})  # noqa: B039

LABELS_KEY = "logging.googleapis.com/labels"
TRACE_KEY = "logging.googleapis.com/trace"


@contextlib.contextmanager
def log_context(
    *, saga_id: str | None = None, step: str | None = None, trace: str | None = None
) -> Iterator[None]:
    """Adds labels for the duration of the block (nested blocks extend the outer context)."""
    current = dict(_context.get())
    for key, value in (("saga_id", saga_id), ("step", step), ("trace", trace)):
        if value is not None:
            current[key] = value
    token = _context.set(current)
    try:
        yield
    finally:
        _context.reset(token)


class StructuredLogger:
    def __init__(self, name: str, stream: TextIO | None = None) -> None:
        self.name = name
        self._stream = stream

    def _emit(self, severity: str, message: str, fields: dict[str, Any]) -> None:
        ctx = _context.get()
        entry: dict[str, Any] = {
            "severity": severity,
            "message": message,
            "time": datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z"),
            "logger": self.name,
        }
        labels = {key: ctx[key] for key in ("saga_id", "step") if key in ctx}
        if labels:
            entry[LABELS_KEY] = labels
        if "trace" in ctx:
            entry[TRACE_KEY] = ctx["trace"]
        entry.update(fields)
        stream = self._stream or sys.stdout
        stream.write(json.dumps(entry, default=str, ensure_ascii=False) + "\n")
        stream.flush()

    def debug(self, message: str, **fields: Any) -> None:
        self._emit("DEBUG", message, fields)

    def info(self, message: str, **fields: Any) -> None:
        self._emit("INFO", message, fields)

    def warning(self, message: str, **fields: Any) -> None:
        self._emit("WARNING", message, fields)

    def error(self, message: str, **fields: Any) -> None:
        self._emit("ERROR", message, fields)


def get_logger(name: str) -> StructuredLogger:
    return StructuredLogger(name)


def trace_name(project_id: str, trace_id: str) -> str:
    return f"projects/{project_id}/traces/{trace_id}"
