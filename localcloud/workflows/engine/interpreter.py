"""Runs a loaded workflow (a ``CompiledProgram``): asyncio-native, so an execution parked on
``events.await_callback`` or ``sys.sleep`` costs one coroutine. All time goes through ``host.clock``.
Cancel an execution by cancelling its task. Every value comes from the code compiled at load
(``compiler.py``): ``code.run(frame)``, awaited only when ``code.awaits``.

Scoping (https://cloud.google.com/workflows/docs/reference/syntax/iteration): each routine call has its
own variables; a ``for`` loop's variable and the variables first created inside its body disappear after
the loop, writes to existing outer variables stay; a parallel branch (or iteration) sees the parent's
variables, writes only the ``shared`` ones (checked at load) and keeps the variables it creates.

Step entries (``history.py``): every step opens one, except a ``steps`` block, which is only a grouping in
the source. A block step's parts get their own: each ``for`` iteration (``STEP_FOR_ITERATION``, also for a
parallel ``for``), the matched ``switch`` condition (``STEP_CONDITION``), each parallel branch
(``STEP_PARALLEL_BRANCH_ENTRY``, with a thread id of its own, "1", "2", nested "1.2"), and of a ``try``
the first attempt (``STEP_TRY``), each retry (``STEP_RETRY``) and the ``except`` part (``STEP_EXCEPT``);
the steps inside a part are its children. The inline step of a condition or of a ``try`` is an entry of
its own, under the part, with the name of the step around it.

The steps run here (``run_step``) and in the modules beside it: the block steps in ``control.py``, ``call``
in ``calls.py``; ``frames.py`` holds what they share (the ``Frame``, the signals a step leaves by).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from localcloud.workflows.engine import history as h
from localcloud.workflows.engine.calls import call_step
from localcloud.workflows.engine.compiler import CompiledProgram
from localcloud.workflows.engine.control import for_step, parallel_step, switch_step, try_step
from localcloud.workflows.engine.frames import (
    Break,
    Continue,
    End,
    Frame,
    Jump,
    Return,
    check_memory,
    end_entry,
)
from localcloud.workflows.engine.history import StepHistory
from localcloud.workflows.engine.host import Host
from localcloud.workflows.engine.metering import StepMeter
from localcloud.workflows.engine.scope import Scope
from localcloud.workflows.lang import ast
from localcloud.workflows.lang.errors import WorkflowError
from localcloud.workflows.lang.values import deep_copy, type_error

MAX_CALL_DEPTH = 20

__all__ = ["WorkflowError", "run_execution"]

# https://cloud.google.com/workflows/docs/reference/executions/rest/v1/projects.locations.workflows.executions.stepEntries#StepType
_STEP_TYPES: dict[type, str] = {
    ast.AssignStep: "STEP_ASSIGN",
    ast.SwitchStep: "STEP_SWITCH",
    ast.ForStep: "STEP_FOR",
    ast.TryStep: "STEP_TRY_RETRY_EXCEPT",
    ast.ReturnStep: "STEP_RETURN",
    ast.RaiseStep: "STEP_RAISE",
    ast.NextStep: "STEP_GOTO",
}
_CALL_TYPES = {
    "subworkflow": "STEP_SUBWORKFLOW_CALL",
    "connector": "STEP_CONNECTOR_CALL",
    "builtin": "STEP_STD_LIB_CALL",
}


def step_type(step: ast.Step) -> str:
    found = _STEP_TYPES.get(type(step))
    if found is not None:
        return found
    if isinstance(step, ast.CallStep):
        return _CALL_TYPES[step.kind]
    if isinstance(step, ast.ParallelStep):
        return "STEP_PARALLEL_FOR" if step.loop is not None else "STEP_PARALLEL_BRANCH"
    raise TypeError(f"unknown step {step!r}")


class _Execution:
    def __init__(
        self, program: CompiledProgram, host: Host, meter: StepMeter, step_limit: int, history: StepHistory
    ) -> None:
        self.routines = program.routines
        self.templates = program.templates
        self.paths = program.paths
        self.host = host
        self.meter = meter
        self.step_limit = step_limit
        self.history = history

    def count(self, frame: Frame, step: ast.Step, *, external: bool = False, assign: bool = False) -> None:
        """One step under both readings of the meter (an ``assign`` step: under the per-step one only;
        its entries count one by one under the other)."""
        frame.step = step
        if self.meter.count(frame.routine, step.name, external=external, assign=assign) > self.step_limit:
            raise WorkflowError.tagged(
                "ResourceLimitError", f"the execution exceeded the limit of {self.step_limit} steps"
            )

    async def evaluate(self, template: ast.Template, frame: Frame) -> Any:
        code = self.templates[id(template)]
        value = code.run(frame)
        return await value if code.awaits else value

    async def invoke(self, name: str, args: Mapping[str, Any], caller: Frame | None) -> Any:
        depth = 1 if caller is None else caller.depth + 1
        if depth > MAX_CALL_DEPTH:
            raise WorkflowError.tagged(
                "RecursionError", f"maximum call stack depth {MAX_CALL_DEPTH} exceeded"
            )
        routine = self.routines[name]
        values: dict[str, Any] = {}
        for param in routine.params:
            if param.name in args:
                values[param.name] = deep_copy(args[param.name])  # values, not references
            elif param.has_default:
                values[param.name] = deep_copy(param.default)
            else:
                raise type_error(f"missing argument '{param.name}' for subworkflow '{name}'")
        frame = Frame(self, Scope(values=values), name, depth, caller)
        if caller is not None:  # stepping out of the subworkflow leads to the step that called it
            frame.entry = caller.current
        try:
            await self.run_steps(routine.steps, frame)
        except Return as result:
            return result.value
        except End:
            return None
        return None

    async def run_steps(self, steps: tuple[ast.Step, ...], frame: Frame) -> None:
        i = 0
        while i < len(steps):
            try:
                target = await self.run_step(steps[i], frame)
            except Jump as jump:
                target = jump.target
            if target is None:
                i += 1
                continue
            if target == "end":
                raise End
            if target == "break":
                raise Break
            if target == "continue":
                raise Continue
            for index, candidate in enumerate(steps):
                if candidate.name == target:
                    i = index
                    break
            else:
                raise Jump(target)

    async def run_step(self, step: ast.Step, frame: Frame, *, counted: bool = True) -> str | None:
        kind = _STEP_TYPES.get(type(step))
        if kind is None:
            if isinstance(step, ast.StepsStep):
                return await self.steps_block(step, frame, counted)
            kind = step_type(step)
        history = self.history
        entry = frame.current = history.open(frame.routine, step.name, kind, frame.entry)
        try:
            target = await self._run_step(step, frame, counted, entry)
        except BaseException as error:
            end_entry(history, entry, error)
            if history.detailed:
                history.record_variables(entry, frame.scope)
            if isinstance(error, WorkflowError) and error.stack is None:
                error.stack = frame.stack(step)
            raise
        history.close(entry, h.SUCCEEDED)
        if history.detailed:
            history.record_variables(entry, frame.scope)
        return target

    async def steps_block(self, step: ast.StepsStep, frame: Frame, counted: bool) -> str | None:
        """A ``steps`` block: a grouping in the source, not a step entry (its steps are entries)."""
        try:
            if counted:
                self.count(frame, step)
            await self.run_steps(step.steps, frame)
        except WorkflowError as error:
            if error.stack is None:
                error.stack = frame.stack(step)
            raise
        return step.next

    async def _run_step(self, step: ast.Step, frame: Frame, counted: bool, entry: int) -> str | None:
        if isinstance(step, ast.CallStep):
            return await call_step(self, step, frame, counted)
        inline_try = isinstance(step, ast.TryStep) and len(step.body) == 1 and step.body[0].name == step.name
        if counted and not inline_try:
            self.count(frame, step, assign=isinstance(step, ast.AssignStep))
        if isinstance(step, ast.AssignStep):
            templates = self.templates
            meter = self.meter
            for assignment in step.assignments:
                meter.assignment()  # per-assignment reading: each entry, also inline in a condition
                code = templates[id(assignment.value)]
                value = code.run(frame)
                if code.awaits:
                    value = await value
                if code.aliases:
                    value = deep_copy(value)
                if not assignment.path:
                    frame.scope.set(assignment.target, value)
                    continue
                path = self.paths[id(assignment)]
                keys = path.run(frame)
                frame.scope.store(assignment.target, await keys if path.awaits else keys, value)
            check_memory(frame)
            return step.next
        if isinstance(step, ast.ReturnStep):
            code = self.templates[id(step.value)]
            value = code.run(frame)
            raise Return(await value if code.awaits else value)
        if isinstance(step, ast.RaiseStep):
            raise WorkflowError(await self.evaluate(step.value, frame))
        if isinstance(step, ast.NextStep):
            return step.next
        if isinstance(step, ast.SwitchStep):
            return await switch_step(self, step, frame, entry)
        if isinstance(step, ast.ForStep):
            await for_step(self, step, frame, entry)
            return step.next
        if isinstance(step, ast.ParallelStep):
            await parallel_step(self, step, frame, entry)
            return step.next
        if isinstance(step, ast.TryStep):
            return await try_step(self, step, frame, inline_try, entry)
        raise TypeError(f"unknown step {step!r}")


def error_context(error: WorkflowError) -> str:
    """A human-readable trace, in the manner of the Executions API's ``error.context``."""
    lines = [str(error)]
    for element in error.stack or []:
        lines.append(f'in step "{element["step"]}", routine "{element["routine"]}", line: {element["line"]}')
    return "\n".join(lines)


async def run_execution(
    program: CompiledProgram,
    argument: Any,
    host: Host,
    *,
    meter: StepMeter | None = None,
    step_limit: int = 100_000,
    history: StepHistory | None = None,
) -> Any:
    """Run ``main`` with ``argument`` and return its result (JSON-able). Raises ``WorkflowError`` for an
    uncaught error, with ``.stack`` (innermost first: ``{"step", "routine", "line", "column"}``) and
    ``.context`` attached. Cancel by cancelling the task running this coroutine. The step entries go to
    ``history``."""
    execution = _Execution(
        program,
        host,
        meter if meter is not None else StepMeter(),
        step_limit,
        history if history is not None else StepHistory(host.clock),
    )
    main = program.main
    args = {main.params[0].name: argument} if main.params else {}
    try:
        result = await execution.invoke("main", args, None)
    except WorkflowError as error:
        if error.stack is None:
            error.stack = []
        error.context = error_context(error)
        raise
    except (Break, Continue, Jump) as stray:  # excluded by the loader's checks
        raise WorkflowError.tagged("SystemError", f"stray control flow: {type(stray).__name__}") from None
    if _contains_bytes(result):
        failure = WorkflowError.tagged(
            "TypeError", "bytes cannot be returned by a workflow; base64.encode them"
        )
        failure.stack = []
        failure.context = error_context(failure)
        raise failure
    return result


def _contains_bytes(value: Any) -> bool:
    if isinstance(value, bytes):
        return True
    if isinstance(value, list):
        return any(_contains_bytes(v) for v in value)
    if isinstance(value, dict):
        return any(_contains_bytes(v) for v in value.values())
    return False
