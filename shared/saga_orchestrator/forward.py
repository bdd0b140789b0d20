"""The forward run: the first attempt of a saga's steps, one after the other, in one request from the
workflow to step_executor (the workflow's ``run_forward`` step, an authenticated ``http.post``).

Why: a Cloud Task and a callback per step cost the workflow a ``tasks.create`` (internal), an
``events.await_callback`` (external) and the record of the answer, per step. Most calls settle at their
first attempt, so the workflow asks step_executor to make those first attempts directly and in a row,
and falls back to a Cloud Task and its callback, with Cloud Tasks' durable retries, only for the step
whose first attempt did not settle. A happy saga then costs the workflow a handful of steps whatever its
length (``bench/cost.py``).

What one run does, for the steps in order, until one does not succeed:

- it makes the step's first attempt exactly as a Cloud Task's first dispatch would (``StepExecutor.settle``
  with attempt 1: same Idempotency-Key, egress, secrets, deadline, output budget), the outputs the call
  references picked from those of the steps before it;
- a success is recorded and the run goes on with the next step (past the saga deadline, the run stops
  and hands it to the workflow, which ends the saga there, as its callback would have);
- a final failure (business, invalid, over its output budget, exhausted when ``max_attempts`` is 1, or the
  saga deadline) stops the run: the workflow records it as if its callback had brought it (compensation,
  park, ...). Unless the step parks or its output was over its budget, the answer also carries the
  request of a *backward run* (``undo``), which the workflow sends once this answer is in: the first
  attempt of each done step's compensation, in reverse order, as the workflow's backward pass would make
  it. Its answer is the compensated saga when they all succeed, else the state to take over with (the
  undos left, and the attempt made on the one that did not succeed). Undoing in a second request means
  that a run lost midway never leaves a compensation behind that the workflow, retrying the steps
  through their tasks, could send an execute after;
- a transient failure with attempts left stops the run: the workflow creates the step's task with
  ``attempts_before`` 1, so the step is still called exactly ``max_attempts`` times;
- before a step that starts a second or more after the run began, it checks that its execution is still
  running (Executions API ``get``; ``running``): an execution terminated while a slow step ran gets no
  further call (fast runs make no check, so no quota is spent on them);
- it starts no step once it has run ``SAGA_DIRECT_RUN_SECONDS`` (a cancel is read by the workflow between
  steps only once it waits on its callback again), nor one whose call could outlast the saga deadline
  (the workflow's wait, through the step's task, then decides its outcome at the deadline, unknown if it
  is still running) or the dispatch deadline, which bounds the request (the workflow's ``http.post``
  waits up to 1800 s, Workflows' most; on Google Cloud the function's own timeout ends a request that
  hangs).

When every step succeeds (or one fails for good with nothing to undo before it) the answer carries the
saga's completion body (what the workflow would have posted to saga_completion); else the state the
workflow takes over from. A run that breaks (the process killed, the answer lost) leaves the workflow
with no state: it runs every step through Cloud Tasks from the first, and each participant answers a
repeated Idempotency-Key with what it did, so no effect is applied twice and none is lost (the
participant protocol, README "Participants").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard

from saga_orchestrator.budget import ATTEMPT_OVERHEAD_SECONDS
from saga_orchestrator.errors import FieldError, InvalidRequestError
from saga_orchestrator.executor import OUTPUT_TOO_LARGE, Settled, StepExecutor, StepTask
from saga_orchestrator.logging import get_logger, log_context, trace_name
from saga_orchestrator.model import ActionSpec
from saga_orchestrator.settings import Settings
from saga_orchestrator.times import format_time
from saga_orchestrator.tracing import trace_id

log = get_logger("saga_orchestrator.forward")


@dataclass(frozen=True)
class ForwardStep:
    name: str
    execute: ActionSpec
    compensate: ActionSpec | None  # with one, a done step is in the workflow's ``done`` list
    execute_refs: tuple[str, ...]
    compensate_refs: tuple[str, ...]
    max_output_bytes: int | None
    parks: bool  # on_failure "park": a failure waits for an operator (the workflow's part)


@dataclass(frozen=True)
class ForwardRun:
    saga_id: str
    execution: str
    execution_id: str | None
    steps: tuple[ForwardStep, ...]
    deadline: float  # epoch seconds
    started_at: str
    metadata: dict[str, Any]


def is_forward_run(body: Any) -> TypeGuard[dict[str, Any]]:
    """Whether a request body to step_executor is a forward or a backward run (else it is a Cloud
    Task's)."""
    return isinstance(body, dict) and body.get("run") in ("forward", "backward")


def parse_run(body: dict[str, Any], settings: Settings) -> ForwardRun:
    """Raises ``InvalidRequestError`` naming every bad field (each call is checked again, allowlist too)."""
    errors: list[FieldError] = []
    for key in ("saga_id", "execution", "started_at"):
        if not isinstance(body.get(key), str) or not body.get(key):
            errors.append(FieldError(key, "is required and must be a string"))
    deadline = body.get("deadline")
    if not isinstance(deadline, int | float) or isinstance(deadline, bool):
        errors.append(FieldError("deadline", "is required and must be epoch seconds"))
    raw_steps = body.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        errors.append(FieldError("steps", "is required and must be a non-empty list"))
        raw_steps = []
    steps = [_step(raw, f"steps[{i}]", settings, errors) for i, raw in enumerate(raw_steps)]
    if errors:
        raise InvalidRequestError(errors)
    execution_id = body.get("execution_id")
    metadata = body.get("metadata")
    return ForwardRun(
        saga_id=body["saga_id"],
        execution=body["execution"],
        execution_id=execution_id if isinstance(execution_id, str) else None,
        steps=tuple(step for step in steps if step is not None),
        deadline=float(deadline),  # type: ignore[arg-type]
        started_at=body["started_at"],
        metadata=metadata if isinstance(metadata, dict) else {},
    )


def _step(raw: Any, where: str, settings: Settings, errors: list[FieldError]) -> ForwardStep | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        errors.append(FieldError(where, "must be a step of the workflow argument (an object with a name)"))
        return None
    try:
        execute = ActionSpec.from_dict(raw.get("execute"), settings, path=f"{where}.execute")
        undo = raw.get("compensate")
        compensate = (
            None if undo is None else ActionSpec.from_dict(undo, settings, path=f"{where}.compensate")
        )
    except InvalidRequestError as error:
        errors.extend(error.errors)
        return None
    budget = raw.get("max_output_bytes")
    return ForwardStep(
        name=raw["name"],
        execute=execute,
        compensate=compensate,
        execute_refs=_names(raw.get("execute_refs")),
        compensate_refs=_names(raw.get("compensate_refs")),
        max_output_bytes=budget if isinstance(budget, int) and not isinstance(budget, bool) else None,
        parks=raw.get("on_failure") == "park",
    )


def _names(value: Any) -> tuple[str, ...]:
    return tuple(str(name) for name in value) if isinstance(value, list) else ()


# A step that starts this many seconds or more after its run began is preceded by a check that the
# execution still runs.
CHECK_AFTER_SECONDS = 1.0


class Forward:
    """Runs ``ForwardRun``s with a process's ``StepExecutor``; thread-safe as the executor is.
    ``running(execution)``: whether that execution still runs (None: never checked)."""

    def __init__(
        self,
        executor: StepExecutor,
        *,
        running: Callable[[str], bool] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._executor = executor
        self._settings = executor.settings
        self._running = running
        self._clock = clock
        self._monotonic = monotonic

    def handle(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The HTTP status and JSON answer for a forward run's request body."""
        try:
            run = parse_run(body, self._settings)
        except InvalidRequestError as error:
            # The workflow takes any error as a lost run and goes on through Cloud Tasks, whose
            # step_executor reports the same problem to the saga as an invalid call.
            log.warning("refusing an invalid forward run", errors=[e.to_dict() for e in error.errors])
            return 400, {"errors": [e.to_dict() for e in error.errors]}
        with log_context(
            saga_id=run.saga_id, trace=trace_name(self._settings.project_id, trace_id(run.saga_id))
        ):
            if body.get("run") == "forward":
                return 200, self.run(run)
            try:
                return 200, self.backward(run, body)
            except (InvalidRequestError, KeyError, TypeError, ValueError) as error:
                errors = (
                    error.errors if isinstance(error, InvalidRequestError) else [FieldError("", str(error))]
                )
                log.warning("refusing an invalid backward run", errors=[e.to_dict() for e in errors])
                return 400, {"errors": [e.to_dict() for e in errors]}

    def run(self, run: ForwardRun) -> dict[str, Any]:
        state = _State(run, began=self._monotonic())
        for index, step in enumerate(run.steps):
            elapsed = self._monotonic() - state.began
            may_start = self._may_start(step, elapsed, run.deadline, first=index == 0)
            if not (may_start and self._still_running(run, state, f"step {step.name}")):
                return state.handover(index, None, 0, step, self._clock())
            settled, started = self._first_attempt(run, state, index, "execute")
            if settled.final is None:
                return state.handover(index, None, 1, step, started)
            last = index == len(run.steps) - 1
            failed = settled.final["status"] != "succeeded"
            undo = failed and _undoable(step, settled.final)
            ended = self._clock()
            if undo and not state.done:
                state.failed(index, step, settled.final, started, ended)  # nothing to undo
                return {"next": len(run.steps), "completion": state.completion(ended)}
            if failed or (not last and ended >= run.deadline):
                # A failure, or a success after the saga deadline (the workflow ends the saga there,
                # cause "deadline"): the workflow records it as its callback's answer.
                reply = {**settled.final, "step_index": index, "action": "execute"}
                answer = state.handover(index, reply, int(settled.final["attempts"]), step, started)
                if undo:
                    answer["undo"] = state.undo_request(ended)
                return answer
            state.succeeded(index, step, settled.final, started, ended)
        return {"next": len(run.steps), "completion": state.completion(self._clock())}

    def backward(self, run: ForwardRun, body: dict[str, Any]) -> dict[str, Any]:
        """The backward run: the undos' first attempts, then the compensated saga, or what the workflow
        takes over with. ``body`` is the forward run's answer (its handover: the failed step ``next``, its
        ``reply`` and start ``mark``, ``records``, ``outputs``, ``done``) merged with its ``undo_request``
        and the steps, as the workflow sends it."""
        if not isinstance(body.get("next"), int) or not isinstance(body.get("reply"), dict):
            raise InvalidRequestError([FieldError("next", "must name the failed step, with its reply")])
        state = _State(run, began=self._monotonic())
        state.records = list(body.get("records") or [])
        state.outputs = dict(body.get("outputs") or {})
        state.done = [int(j) for j in body.get("done") or []]
        index, reply = body["next"], dict(body["reply"])
        final = {key: value for key, value in reply.items() if key not in ("step_index", "action")}
        started, ended = float(body["mark"]), float(body["ended"])
        if self._undo(run, state, index, final, started, ended):
            return {"next": len(run.steps), "completion": state.completion(self._clock())}
        return state.handover(index, reply, int(final.get("attempts") or 0), run.steps[index], started)

    def _undo(
        self, run: ForwardRun, state: _State, index: int, final: dict[str, Any], started: float, ended: float
    ) -> bool:
        """After step ``index`` failed for good (``final``, between ``started`` and ``ended``), the first
        attempt of each done step's compensation, in reverse order, as the workflow's backward pass would
        make it. True when every one succeeded: ``state`` then holds the compensated saga. Else the
        workflow takes over from the failure, with the undos still to do (``state.done``) and the attempt
        made on the one that did not succeed (``state.undo_attempts``)."""
        step = run.steps[index]
        for j in reversed(list(state.done)):
            done = run.steps[j]
            if not self._still_running(run, state, f"the compensation of {done.name}"):
                return False
            settled, begun = self._first_attempt(run, state, j, "compensate")
            if settled.final is None or settled.final["status"] != "succeeded":
                state.undo_attempts[done.name] = 1 if settled.called else 0
                return False
            state.compensated(j, settled.final, begun, self._clock())
        state.failed(index, step, final, started, ended)
        return True

    def _first_attempt(
        self, run: ForwardRun, state: _State, index: int, action: str
    ) -> tuple[Settled, float]:
        """The first attempt of step ``index``'s ``action``, as its task's first dispatch would make it;
        with the time it started."""
        step = run.steps[index]
        execute = action == "execute"
        call = step.execute if execute else step.compensate
        assert call is not None  # only steps with a compensation are undone
        task = StepTask(
            saga_id=run.saga_id,
            step_name=step.name,
            action=action,
            call=call,
            callback_url=None,
            outputs=state.picked(step.execute_refs if execute else step.compensate_refs),
            execution_id=run.execution_id,
            step_index=index,
            deadline=run.deadline if execute else None,
            max_output_bytes=step.max_output_bytes,
        )
        started = self._clock()
        with log_context(step=step.name):
            return self._executor.settle(task, 1), started

    def _may_start(self, step: ForwardStep, elapsed: float, deadline: float, *, first: bool) -> bool:
        """Within the run's time, and its call within the saga deadline and the dispatch deadline that
        bounds the request."""
        limit = self._settings.direct_run_seconds
        if limit <= 0 or (not first and elapsed >= limit):
            return False
        call = step.execute.timeout_seconds + ATTEMPT_OVERHEAD_SECONDS
        if self._clock() + call > deadline:
            return False
        return elapsed + call <= self._settings.dispatch_deadline_seconds

    def _still_running(self, run: ForwardRun, state: _State, what: str) -> bool:
        """Whether the run may make its next call (``what``): yes within its first second, else when its
        execution still runs, or when that cannot be read."""
        if self._running is None or self._monotonic() - state.began < CHECK_AFTER_SECONDS:
            return True
        try:
            running = self._running(run.execution)
        except Exception as error:  # the check only saves calls; the run goes on without it
            log.warning(f"could not read the state of {run.execution} ({type(error).__name__}); going on")
            return True
        if not running:
            log.warning(f"execution {run.execution} has ended: the forward run stops before {what}")
        return running


def _undoable(step: ForwardStep, final: dict[str, Any]) -> bool:
    """Whether a step that failed for good is compensated at once: not one that parks (an operator
    decides) nor one whose output was over its budget (its own effect happened: the workflow undoes it
    too, first)."""
    return not step.parks and (final.get("error") or {}).get("kind") != OUTPUT_TOO_LARGE


class _State:
    """What the run learned, in the shapes of the workflow's own variables."""

    def __init__(self, run: ForwardRun, *, began: float) -> None:
        self.run = run
        self.began = began  # monotonic seconds
        self.records: list[dict[str, Any]] = []
        self.outputs: dict[str, Any] = {}
        self.done: list[int] = []
        # The compensation the run tried last without success: its attempts (its task counts them).
        self.undo_attempts: dict[str, int] = {}
        # Set once the saga is compensated: (failed step, reason).
        self.failure: tuple[str, str] | None = None

    def succeeded(
        self, index: int, step: ForwardStep, final: dict[str, Any], started: float, finished: float
    ) -> None:
        self.outputs[step.name] = final["output"]
        answer = {key: value for key, value in final.items() if key != "output"}
        answer |= {"started_at": _format(started), "finished_at": _format(finished)}
        self.records.append({"name": step.name, "status": "succeeded", "execute": answer, "compensate": None})
        if step.compensate is not None:
            self.done.append(index)

    def picked(self, refs: tuple[str, ...]) -> dict[str, Any]:
        """The outputs a call references (those that exist)."""
        return {name: self.outputs[name] for name in refs if name in self.outputs}

    def compensated(self, index: int, final: dict[str, Any], started: float, finished: float) -> None:
        """The compensation of step ``index`` succeeded (its record kept as the workflow keeps it)."""
        record = self.records[index]
        record["status"] = "compensated"
        record["compensate"] = {**final, "started_at": _format(started), "finished_at": _format(finished)}
        self.done.remove(index)

    def failed(
        self, index: int, step: ForwardStep, final: dict[str, Any], started: float, finished: float
    ) -> None:
        """Step ``index`` failed for good and every done step was undone: the saga is compensated, the
        steps after it did not run."""
        answer = {**final, "started_at": _format(started), "finished_at": _format(finished)}
        self.records.append({"name": step.name, "status": "failed", "execute": answer, "compensate": None})
        self.records.extend(
            {"name": later.name, "status": "not_run", "execute": None, "compensate": None}
            for later in self.run.steps[index + 1 :]
        )
        message = (final.get("error") or {}).get("message")
        self.failure = (step.name, message if message else f"step {step.name} failed")

    def undo_request(self, ended: float) -> dict[str, Any]:
        """What the backward run needs beyond the handover it is sent with (the workflow merges this
        answer's handover, this and the steps, so the saga's state travels once): who it is for, and when
        the failed step ended."""
        run = self.run
        return {
            "run": "backward",
            "saga_id": run.saga_id,
            "execution": run.execution,
            "execution_id": run.execution_id,
            "metadata": run.metadata,
            "ended": ended,
        }

    def handover(
        self, index: int, reply: dict[str, Any] | None, attempts: int, step: ForwardStep, started: float
    ) -> dict[str, Any]:
        """The workflow goes on from step ``index``: with ``reply`` as its answer when it settled, else
        through its Cloud Task (``attempts`` already made)."""
        picked = self.picked(step.execute_refs)
        return {
            "next": index,
            "reply": reply,
            "attempts": attempts,
            "mark": started,
            "records": self.records,
            "outputs": self.outputs,
            "done": self.done,
            "picked": picked,
            "undo_attempts": self.undo_attempts,
            "deadline": self.run.deadline,
            "started_at": self.run.started_at,
        }

    def completion(self, now: float) -> dict[str, Any]:
        """The body the workflow posts to saga_completion for a saga whose steps all succeeded."""
        run = self.run
        failed_step, reason = self.failure if self.failure is not None else (None, None)
        return {
            "saga_id": run.saga_id,
            "status": "succeeded" if self.failure is None else "compensated",
            "cause": None if self.failure is None else "step_failed",
            "error": None,
            "execution": run.execution,
            "failed_step": failed_step,
            "reason": reason,
            "uncompensated_steps": [],
            "audit": [],
            "steps": self.records,
            "outputs": self.outputs,
            "started_at": run.started_at,
            "finished_at": _format(now),
            "metadata": run.metadata,
        }


def _format(epoch: float) -> str:
    return format_time(datetime.fromtimestamp(epoch, UTC))
