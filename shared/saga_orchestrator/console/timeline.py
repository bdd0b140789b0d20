"""A saga result rendered as a timeline a person can read at a glance.

Input is the saga result (``schemas/saga-result.schema.json``): what ``saga_completion`` publishes on
``saga-results``. Times are RFC 3339 strings; durations are shown relative to the saga's start.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from saga_orchestrator.times import parse_time

_MARK = {
    "succeeded": "✔",
    "compensated": "↺",
    "failed": "✘",
    "compensation_failed": "✘",
    "unknown": "?",
    "not_run": "·",
    "rejected": "✘",
}


def _offset(start: datetime.datetime | None, value: Any) -> str:
    moment = parse_time(value)
    if start is None or moment is None:
        return "     "
    return f"{(moment - start).total_seconds() * 1000:>6.0f} ms"


def _duration(action: Mapping[str, Any]) -> str:
    begin, end = parse_time(action.get("started_at")), parse_time(action.get("finished_at"))
    if begin is None or end is None:
        return ""
    return f"{(end - begin).total_seconds() * 1000:.0f} ms"


def _attempts(action: Mapping[str, Any]) -> str:
    attempts = action.get("attempts")
    if not isinstance(attempts, int):
        return ""
    return "1 attempt" if attempts == 1 else f"{attempts} attempts"


def _error(action: Mapping[str, Any]) -> str:
    error = action.get("error")
    if not isinstance(error, Mapping):
        return ""
    code = error.get("status_code")
    text = str(error.get("message") or error.get("kind") or "")
    return f"{code} {text}".strip() if code else text


def render(result: Mapping[str, Any], *, title: str | None = None) -> str:
    """The timeline of one saga as text lines (no trailing newline)."""
    status = str(result.get("status", "?"))
    start = parse_time(result.get("started_at"))
    lines = [_heading(result, status, start, title)]
    if status == "rejected":
        lines += _rejections(result)
    else:
        lines += _step_lines(result.get("steps") or [], start)
        lines += _closing_lines(result)
    return "\n".join(lines)


def _heading(
    result: Mapping[str, Any], status: str, start: datetime.datetime | None, title: str | None
) -> str:
    """The first line: the saga, its outcome and, once it ended, how long it took."""
    saga_id = str(result.get("saga_id", "?"))
    end = parse_time(result.get("finished_at"))
    total = f" in {(end - start).total_seconds() * 1000:.0f} ms" if start and end else ""
    return f"{title or 'saga'} {saga_id}: {_MARK.get(status, ' ')} {status.upper()}{total}"


def _rejections(result: Mapping[str, Any]) -> list[str]:
    """A line per field a rejected request got wrong."""
    return [
        f"    rejected: {error.get('field')}: {error.get('message')}"
        for error in result.get("errors") or []
        if isinstance(error, Mapping)
    ]


def _step_lines(steps: Sequence[Any], start: datetime.datetime | None) -> list[str]:
    """A line per action, in the order they started; the steps that did not run last."""
    events: list[tuple[str, str]] = []
    for step in steps:
        if isinstance(step, Mapping):
            events += _step_events(step, start)
    return [text for _, text in sorted(events, key=lambda e: e[0])]


def _step_events(step: Mapping[str, Any], start: datetime.datetime | None) -> list[tuple[str, str]]:
    """(sort key, line) of each action of ``step``, or of the step not run."""
    name = str(step.get("name"))
    events = []
    for action_name in ("execute", "compensate"):
        action = step.get(action_name)
        if isinstance(action, Mapping):
            events.append(_action_event(name, action_name, action, start))
    if step.get("status") == "not_run":
        events.append(("~", f"  {'':>9}  {_MARK['not_run']} {'skipped':<10} {name:<18} not run"))
    return events


def _action_event(
    name: str, action_name: str, action: Mapping[str, Any], start: datetime.datetime | None
) -> tuple[str, str]:
    """(sort key, line) of one action: when it started, its outcome, attempts, duration and error."""
    detail = ", ".join(part for part in (_attempts(action), _duration(action), _error(action)) if part)
    mark = _MARK.get(str(action.get("status")), " ")
    return (
        str(action.get("started_at") or ""),
        f"  {_offset(start, action.get('started_at'))}  {mark} {action_name:<10} {name:<18}"
        f" {action.get('status')}" + (f"  ({detail})" if detail else ""),
    )


def _closing_lines(result: Mapping[str, Any]) -> list[str]:
    """Where an ended saga stopped, and its execution."""
    lines = []
    if result.get("failed_step"):
        lines.append(f"    failed step: {result.get('failed_step')}: {result.get('reason')}")
    execution = result.get("execution")
    if execution:
        lines.append(f"    execution: {execution}")
    return lines
