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
    saga_id = str(result.get("saga_id", "?"))
    start = parse_time(result.get("started_at"))
    end = parse_time(result.get("finished_at"))
    total = f" in {(end - start).total_seconds() * 1000:.0f} ms" if start and end else ""
    lines = [f"{title or 'saga'} {saga_id}: {_MARK.get(status, ' ')} {status.upper()}{total}"]
    if status == "rejected":
        for error in result.get("errors") or []:
            if isinstance(error, Mapping):
                lines.append(f"    rejected: {error.get('field')}: {error.get('message')}")
        return "\n".join(lines)

    steps: Sequence[Any] = result.get("steps") or []
    events: list[tuple[str, str]] = []
    for step in steps:
        if not isinstance(step, Mapping):
            continue
        name = str(step.get("name"))
        for action_name in ("execute", "compensate"):
            action = step.get(action_name)
            if not isinstance(action, Mapping):
                continue
            detail = ", ".join(
                part for part in (_attempts(action), _duration(action), _error(action)) if part
            )
            mark = _MARK.get(str(action.get("status")), " ")
            sort_key = str(action.get("started_at") or "")
            events.append(
                (
                    sort_key,
                    f"  {_offset(start, action.get('started_at'))}  {mark} {action_name:<10} {name:<18}"
                    f" {action.get('status')}" + (f"  ({detail})" if detail else ""),
                )
            )
        if step.get("status") == "not_run":
            events.append(("~", f"  {'':>9}  {_MARK['not_run']} {'skipped':<10} {name:<18} not run"))
    lines.extend(text for _, text in sorted(events, key=lambda e: e[0]))
    if result.get("failed_step"):
        lines.append(f"    failed step: {result.get('failed_step')}: {result.get('reason')}")
    execution = result.get("execution")
    if execution:
        lines.append(f"    execution: {execution}")
    return "\n".join(lines)
