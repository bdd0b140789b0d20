"""The saga's own view of its execution: the saga's state, each step's progress, and what an undo would
do now. Everything comes from Google's APIs, not from a store of our own:

- the execution (Executions API, FULL view): its state, its result (the saga result once it ended) and
  ``status.currentSteps``;
- its step entries (``stepEntries.list``, REST;
  https://cloud.google.com/workflows/docs/debug-steps): which main step runs now and how far the
  forward loop got (``stepEntryMetadata.progressNumber`` of the ``run_steps`` iterations, counted from 1);
- the saga's pending Cloud Tasks (``tasks.list`` of the saga queue): a task name ends
  ``<execution id>-<step index>-<action>-<try>``, and the task counts its dispatches and answers
  (https://cloud.google.com/tasks/docs/reference/rpc/google.cloud.tasks.v2#task), so the action in
  flight shows its attempts so far and its last answer.

``describe`` is pure: it takes what those APIs answered and returns a ``SagaView``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

# The saga's own states; the last three are final.
SAGA_STATES = ("running", "parked", "stuck", "compensating", "succeeded", "compensated", "failed")
FINAL_STATES = ("succeeded", "compensated", "failed")
RUNNING_EXECUTION_STATES = ("ACTIVE", "QUEUED")

# The saga workflow's steps of main, by the saga state they mean while the execution runs. A test checks
# that every step of workflows/saga_orchestrator.yaml is named here once. "finish", "complete" and
# "done_saga" publish the result: they keep the state of what ran before them (see ``_phase``).
PHASES: dict[str, tuple[str, ...]] = {
    "running": (
        "open_callback",
        "no_callback",
        "run_forward",
        "run_lost",
        "run_settled",
        "init",
        "callback_check",
        "resume_from",
        "forward",
        "run_steps",
        "execute_task",
        "execute_task_exists",
        "execute_task_refused",
        "execute_wait",
        "execute_still_waiting",
        "execute_wait_hour",
        "execute_woke_hour",
        "execute_wait_minutes",
        "execute_woke_minutes",
        "execute_forget_task",
        "already_gone",
        "execute_record_unknown",
        "execute_record",
        "execute_keep",
        "execute_pick",
        "execute_pick_one",
        "execute_cancelled",
        "execute_cancel_task",
        "cancelled_task_gone",
        "execute_record_cancel",
        "forward_broke",
        "forward_broke_where",
        "forward_broke_forget",
        "broke_task_gone",
        "forward_broke_record",
        "decide",
    ),
    "parked": ("park", "park_notice", "park_wait", "park_decide", "park_give_up"),
    "stuck": ("stuck", "stuck_notice", "stuck_wait", "stuck_decide"),
    "compensating": (
        "run_backward",
        "backward_lost",
        "backward",
        "undo_steps",
        "pick",
        "compensate_pick",
        "compensate_pick_one",
        "compensate_task",
        "compensate_task_exists",
        "compensate_task_failed",
        "compensate_wait",
        "compensate_still_waiting",
        "compensate_wait_hour",
        "compensate_woke_hour",
        "compensate_wait_minutes",
        "compensate_woke_minutes",
        "compensate_record_unknown",
        "compensate_record",
        "give_up",
        "backward_broke",
        "backward_broke_mark",
        "mark_uncompensated",
        "not_run",
        "mark_not_run",
    ),
}
PUBLISHING_STEPS = ("finish", "complete", "done_saga")
_PHASE_OF = {step: phase for phase, steps in PHASES.items() for step in steps}
_TASK_NAME = re.compile(r"-(\d+)-(execute|compensate)-(\d+)$")


@dataclass(frozen=True)
class InFlight:
    """A saga's pending Cloud Task: the action it carries and what Cloud Tasks counted of it."""

    index: int
    action: str
    round: int
    dispatches: int
    responses: int
    last_status: str | None = None  # the last answer step_executor gave Cloud Tasks, when one came


@dataclass(frozen=True)
class StepProgress:
    """One step of a saga. ``status``: pending, running, parked, succeeded, failed, unknown, not_run,
    compensating, stuck, compensated or compensation_failed. ``attempts``: of the action in flight (so
    far) or of the last one; ``last_answer``: its last answer in words."""

    name: str
    status: str
    action: str | None = None
    attempts: int | None = None
    last_answer: str | None = None


@dataclass(frozen=True)
class SagaView:
    """A saga as a person thinks of it. ``state`` is the saga's (``SAGA_STATES``); ``execution_state``
    the Executions API's (ACTIVE, SUCCEEDED, FAILED, CANCELLED, ...). ``result`` is the saga result
    once it ended; ``current_step`` the workflow step (routine, step) running now."""

    saga_id: str | None
    state: str
    execution_name: str
    execution_state: str
    start_time: str | None = None
    end_time: str | None = None
    steps: tuple[StepProgress, ...] = ()
    result: Any = None
    error: Any = None
    current_step: tuple[str, str] | None = None
    audit: tuple[Mapping[str, Any], ...] = field(default=())

    @property
    def running(self) -> bool:
        return self.state not in FINAL_STATES

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["current_step"] = list(self.current_step) if self.current_step else None
        data["steps"] = [asdict(step) for step in self.steps]
        data["audit"] = [dict(entry) for entry in self.audit]
        return data


def phase_of(step: str | None) -> str | None:
    """The saga state a step of main means while the execution runs (None for others)."""
    return _PHASE_OF.get(step or "")


def main_step(entries: Sequence[Mapping[str, Any]], current: Sequence[tuple[str, str]]) -> str | None:
    """The step of main running now: the last main entry, else the outermost main step reported."""
    for entry in reversed(entries):
        step = str(entry.get("step"))
        if entry.get("routine") == "main" and (phase_of(step) is not None or step in PUBLISHING_STEPS):
            return step
    return next((step for routine, step in current if routine == "main"), None)


def forward_iterations(entries: Iterable[Mapping[str, Any]]) -> int:
    """How many iterations of the forward loop have started (0 when none), from the step entries."""
    started = 0
    for entry in entries:
        meta = entry.get("stepEntryMetadata") or {}
        if entry.get("routine") != "main" or meta.get("progressType") != "PROGRESS_TYPE_FOR":
            continue
        if _PHASE_OF.get(str(entry.get("step"))) in ("running", "parked") or entry.get("step") == "run_steps":
            started = max(started, int(meta.get("progressNumber") or 0))
    return started


def went_backward(entries: Iterable[Mapping[str, Any]]) -> bool:
    return any(entry.get("routine") == "main" and entry.get("step") == "backward" for entry in entries)


def in_flight(task_names: Iterable[tuple[str, int, int, str | None]], execution_id: str) -> InFlight | None:
    """The saga's pending task, from ``(name, dispatch count, response count, last status)`` of the
    queue's tasks; the latest (highest try) when several are pending."""
    found = []
    for name, dispatches, responses, last in task_names:
        tail = name.rsplit("/tasks/", 1)[-1]
        match = _TASK_NAME.search(tail)
        if match and tail.startswith(execution_id + "-") and tail[: match.start()] == execution_id:
            index, action, round_ = int(match.group(1)), match.group(2), int(match.group(3))
            found.append(InFlight(index, action, round_, dispatches, responses, last))
    return max(found, key=lambda f: (f.action == "compensate", f.round), default=None)


def saga_state(execution_state: str, result: Any, step: str | None, backward: bool) -> str:
    """The saga's state from the execution's state, its result, the main step running and whether the
    undo loop has begun."""
    if execution_state not in RUNNING_EXECUTION_STATES:
        status = result.get("status") if isinstance(result, Mapping) else None
        return str(status) if execution_state == "SUCCEEDED" and status in FINAL_STATES else "failed"
    if step in PUBLISHING_STEPS or step is None:
        return "compensating" if backward else "running"
    return phase_of(step) or "running"


def describe(
    status: Any,
    argument: Mapping[str, Any] | None,
    entries: Sequence[Mapping[str, Any]] = (),
    flight: InFlight | None = None,
) -> SagaView:
    """The saga's view of ``status`` (a ``ports.SagaStatus``), its ``argument`` (the normalized request,
    for the step names), its step entries and its pending task."""
    current = tuple(getattr(status, "current_steps", ()) or ())
    step = main_step(entries, current)
    backward = went_backward(entries) or phase_of(step) in ("compensating", "stuck")
    state = saga_state(status.state, status.result, step, backward)
    result = status.result if isinstance(status.result, Mapping) and "status" in status.result else None
    if result is not None and state in FINAL_STATES:
        steps, audit = _ended(result)
    else:
        steps, audit = _live(_names(argument), state, forward_iterations(entries), flight), ()
    return SagaView(
        saga_id=status.saga_id,
        state=state,
        execution_name=status.execution_name,
        execution_state=status.state,
        start_time=status.start_time,
        end_time=status.end_time,
        steps=steps,
        result=status.result,
        error=status.error,
        current_step=status.current_step,
        audit=audit,
    )


def _names(argument: Mapping[str, Any] | None) -> list[str]:
    return [str(s.get("name")) for s in (argument or {}).get("steps") or [] if isinstance(s, Mapping)]


def _ended(result: Mapping[str, Any]) -> tuple[tuple[StepProgress, ...], tuple[Mapping[str, Any], ...]]:
    """The steps and the audit of an ended saga, from its result."""
    steps = tuple(_recorded(record) for record in result.get("steps") or [] if isinstance(record, Mapping))
    return steps, tuple(e for e in result.get("audit") or [] if isinstance(e, Mapping))


def _recorded(record: Mapping[str, Any]) -> StepProgress:
    """A step of an ended saga, from its record in the result."""
    compensate = record.get("compensate") if isinstance(record.get("compensate"), Mapping) else None
    execute = record.get("execute") if isinstance(record.get("execute"), Mapping) else None
    last = compensate or execute
    return StepProgress(
        name=str(record.get("name")),
        status=str(record.get("status")),
        action=("compensate" if compensate else "execute") if last else None,
        attempts=last.get("attempts") if last else None,
        last_answer=answer_text(last) if last else None,
    )


def _live(names: list[str], state: str, iterations: int, flight: InFlight | None) -> tuple[StepProgress, ...]:
    """The steps of a saga without a result. Forward: the steps before the loop's current iteration
    succeeded; the current one runs, is parked, or (the saga undoing or ended) stopped there. Undoing,
    the pending compensation at step j tells that the steps after j were undone already (the undos
    run last first). The pending task, when there is one, gives the attempts so far."""
    current = iterations - 1 if iterations else (flight.index if flight else -1)
    if flight is not None and flight.action == "execute":
        current = flight.index
    stopped = "failed" if state in ("compensating", "stuck") else "unknown"
    here = {"running": "running", "parked": "parked"}.get(state, stopped)
    steps = [
        StepProgress(name, "succeeded" if i < current else here if i == current else "pending")
        for i, name in enumerate(names)
    ]
    if flight is not None and 0 <= flight.index < len(steps):
        undoing = flight.action == "compensate"
        for i in range(flight.index + 1, current) if undoing else ():
            steps[i] = StepProgress(names[i], "compensated", "compensate")
        steps[flight.index] = StepProgress(
            name=names[flight.index],
            status=("stuck" if state == "stuck" else "compensating") if undoing else here,
            action=flight.action,
            attempts=flight.dispatches,
            last_answer=flight.last_status,
        )
    return tuple(steps)


def answer_text(action: Mapping[str, Any]) -> str | None:
    """An action's last answer in words: ``succeeded``, or the error's kind, status code and message."""
    error = action.get("error")
    if not isinstance(error, Mapping):
        return str(action.get("status")) if action.get("status") else None
    code = error.get("status_code")
    parts = [str(error.get("kind") or "error"), str(code) if code else "", str(error.get("message") or "")]
    return " ".join(p for p in parts if p).strip()


def undo_plan(argument: Mapping[str, Any] | None, view: SagaView) -> list[dict[str, Any]]:
    """What would be undone, in order, if the saga failed now: the compensations of the steps that took
    effect (succeeded, or whose outcome is unknown), last first, with their calls as the request gave
    them (``$ref``s to outputs unresolved: the outputs live in the workflow)."""
    specs = {str(s.get("name")): s for s in (argument or {}).get("steps") or [] if isinstance(s, Mapping)}
    pending = ("succeeded", "unknown", "running", "parked", "compensating", "stuck")
    took_effect = [s.name for s in view.steps if s.status in pending]
    plan = []
    for name in reversed(took_effect):
        call = (specs.get(name) or {}).get("compensate")
        if isinstance(call, Mapping):
            plan.append(
                {
                    "step": name,
                    "method": call.get("method", "POST"),
                    "url": call.get("url"),
                    "payload": call.get("payload"),
                }
            )
    return plan
