"""A saga's timeline for the web console, as bars: an ended saga's from its result, a running saga's from
its live progress.

The timeline of an ended saga comes from its result: each action's ``started_at``/``finished_at``; an
action with several attempts is one bar marked with its count (the result does not keep each attempt's
times); a wait for an operator's decision is drawn from the end of the action before it to the decision's
``at`` in the audit (a saga runs one action at a time, so the gap is the wait; a retried action's earlier,
failed attempts fall inside it, their times being replaced by the retry's). A running saga has no times
per step: its steps are drawn from their live progress, without a time axis.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from saga_orchestrator.sagas import SagaView, answer_text
from saga_orchestrator.times import parse_time


@dataclass(frozen=True)
class Bar:
    """One row of a saga's timeline. ``kind``: execute, compensate, wait or not_run. ``start``/``end``:
    seconds since the saga started; None for a running saga's steps (no times known per step)."""

    step: str
    kind: str
    status: str
    start: float | None = None
    end: float | None = None
    attempts: int | None = None
    detail: str = ""


def _since(origin: datetime.datetime | None, value: Any) -> float | None:
    moment = parse_time(value)
    return None if origin is None or moment is None else max((moment - origin).total_seconds(), 0.0)


def timeline_bars(result: Mapping[str, Any]) -> tuple[list[Bar], float]:
    """The bars of an ended saga, from its result, in the order they started; and the span they cover
    (seconds from the saga's start to its end, or to the last bar's end)."""
    origin = parse_time(result.get("started_at"))
    bars: list[Bar] = []
    for step in result.get("steps") or []:
        if not isinstance(step, Mapping):
            continue
        name = str(step.get("name"))
        for kind in ("execute", "compensate"):
            action = step.get(kind)
            if isinstance(action, Mapping):
                attempts = action.get("attempts")
                bars.append(
                    Bar(
                        step=name,
                        kind=kind,
                        status=str(action.get("status")),
                        start=_since(origin, action.get("started_at")),
                        end=_since(origin, action.get("finished_at")),
                        attempts=attempts if isinstance(attempts, int) else None,
                        detail="" if action.get("status") == "succeeded" else answer_text(action) or "",
                    )
                )
        if step.get("status") == "not_run":
            bars.append(Bar(name, "not_run", "not_run", detail="not run: the saga stopped before it"))
    bars += _waits(bars, result.get("audit"), origin)
    bars.sort(key=lambda bar: (bar.start is None, bar.start or 0.0, bar.kind != "wait"))
    ends = [bar.end for bar in bars if bar.end is not None]
    span = _since(origin, result.get("finished_at")) or max(ends, default=0.0)
    return bars, max(span, *ends, 0.001)


def _waits(bars: Sequence[Bar], audit: Any, origin: datetime.datetime | None) -> list[Bar]:
    """A wait per operator decision on a step: from the end of the last action before it to its time."""
    waits = []
    for entry in audit if isinstance(audit, list) else []:
        if not isinstance(entry, Mapping) or entry.get("verb") not in ("retry", "skip", "compensate"):
            continue
        at = _since(origin, entry.get("at"))
        if at is None or not entry.get("step"):
            continue
        start = max((bar.end for bar in bars if bar.end is not None and bar.end <= at), default=0.0)
        who = f" by {entry.get('by')}" if entry.get("by") else ""
        waits.append(
            Bar(
                step=str(entry.get("step")),
                kind="wait",
                status=str(entry.get("verb")),
                start=start,
                end=at,
                detail=f"waited for a decision: {entry.get('verb')}{who}: {entry.get('reason')}",
            )
        )
    return waits


def live_bars(view: SagaView) -> list[Bar]:
    """The rows of a running saga: each step's live progress (no times)."""
    return [
        Bar(
            step=step.name,
            kind=step.action or "execute",
            status=step.status,
            attempts=step.attempts,
            detail=f"last answer: {step.last_answer}" if step.last_answer else "",
        )
        for step in view.steps
    ]


__all__ = ["Bar", "live_bars", "timeline_bars"]
