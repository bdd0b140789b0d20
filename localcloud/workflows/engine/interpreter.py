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
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from localcloud.workflows.engine import history as h
from localcloud.workflows.engine.compiler import RETURNS_ARGUMENT, CompiledProgram
from localcloud.workflows.engine.history import StepHistory
from localcloud.workflows.engine.host import Host
from localcloud.workflows.engine.metering import StepMeter
from localcloud.workflows.engine.scope import Scope
from localcloud.workflows.engine.stdlib import BUILTINS, EXTERNAL_FUNCTIONS, HTTP_FUNCTIONS, Builtin
from localcloud.workflows.lang import ast
from localcloud.workflows.lang.errors import WorkflowError
from localcloud.workflows.lang.values import (
    MEMORY_LIMIT_BYTES,
    deep_copy,
    is_int,
    is_number,
    type_error,
    type_name,
)

MAX_CALL_DEPTH = 20
MAX_CONCURRENT_BRANCHES = 20
MAX_UNHANDLED_BRANCH_ERRORS = 100

__all__ = ["WorkflowError", "run_execution"]


class _Jump(Exception):
    def __init__(self, target: str) -> None:
        self.target = target


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Return(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


class _End(Exception):
    pass


_LEAVES = (_Jump, _Break, _Continue, _Return, _End)  # a step that ends this way has succeeded
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


def _end(history: StepHistory, entry: int, error: BaseException) -> None:
    """Ends ``entry``, left by ``error``: FAILED with a workflow error (or an engine defect), SUCCEEDED
    when it left by ``next``, ``return``, ``break``, ``continue`` or ``end``, CANCELLED when cancelled."""
    if isinstance(error, WorkflowError):
        history.close(entry, h.FAILED, error.payload)
    elif isinstance(error, _LEAVES):
        history.close(entry, h.SUCCEEDED)
    elif isinstance(error, asyncio.CancelledError):
        history.close(entry, h.CANCELLED)
    else:
        history.close(entry, h.FAILED)


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

    def count(self, frame: _Frame, step: ast.Step, *, external: bool = False, assign: bool = False) -> None:
        """One step under both readings of the meter (an ``assign`` step: under the per-step one only;
        its entries count one by one under the other)."""
        frame.step = step
        if self.meter.count(frame.routine, step.name, external=external, assign=assign) > self.step_limit:
            raise WorkflowError.tagged(
                "ResourceLimitError", f"the execution exceeded the limit of {self.step_limit} steps"
            )

    async def evaluate(self, template: ast.Template, frame: _Frame) -> Any:
        code = self.templates[id(template)]
        value = code.run(frame)
        return await value if code.awaits else value

    async def invoke(self, name: str, args: Mapping[str, Any], caller: _Frame | None) -> Any:
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
        frame = _Frame(self, Scope(values=values), name, depth, caller)
        if caller is not None:  # stepping out of the subworkflow leads to the step that called it
            frame.entry = caller.current
        try:
            await self.run_steps(routine.steps, frame)
        except _Return as result:
            return result.value
        except _End:
            return None
        return None

    async def run_steps(self, steps: tuple[ast.Step, ...], frame: _Frame) -> None:
        i = 0
        while i < len(steps):
            try:
                target = await self.run_step(steps[i], frame)
            except _Jump as jump:
                target = jump.target
            if target is None:
                i += 1
                continue
            if target == "end":
                raise _End
            if target == "break":
                raise _Break
            if target == "continue":
                raise _Continue
            for index, candidate in enumerate(steps):
                if candidate.name == target:
                    i = index
                    break
            else:
                raise _Jump(target)

    async def run_step(self, step: ast.Step, frame: _Frame, *, counted: bool = True) -> str | None:
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
            _end(history, entry, error)
            if history.detailed:
                history.record_variables(entry, frame.scope)
            if isinstance(error, WorkflowError) and error.stack is None:
                error.stack = frame.stack(step)
            raise
        history.close(entry, h.SUCCEEDED)
        if history.detailed:
            history.record_variables(entry, frame.scope)
        return target

    async def steps_block(self, step: ast.StepsStep, frame: _Frame, counted: bool) -> str | None:
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

    async def run_part(self, frame: _Frame, entry: int, steps: tuple[ast.Step, ...]) -> None:
        """Runs ``steps`` as the children of ``entry`` (a part of a block step), then ends ``entry`` by the
        outcome."""
        saved = frame.entry
        frame.entry = entry
        try:
            await self.run_steps(steps, frame)
        except BaseException as error:
            _end(self.history, entry, error)
            raise
        finally:
            frame.entry = saved
        self.history.close(entry, h.SUCCEEDED)

    async def _run_step(self, step: ast.Step, frame: _Frame, counted: bool, entry: int) -> str | None:
        if isinstance(step, ast.CallStep):
            return await self.call_step(step, frame, counted)
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
            self.check_memory(frame)
            return step.next
        if isinstance(step, ast.ReturnStep):
            code = self.templates[id(step.value)]
            value = code.run(frame)
            raise _Return(await value if code.awaits else value)
        if isinstance(step, ast.RaiseStep):
            raise WorkflowError(await self.evaluate(step.value, frame))
        if isinstance(step, ast.NextStep):
            return step.next
        if isinstance(step, ast.SwitchStep):
            return await self.switch_step(step, frame, entry)
        if isinstance(step, ast.ForStep):
            await self.for_step(step, frame, entry)
            return step.next
        if isinstance(step, ast.ParallelStep):
            await self.parallel_step(step, frame, entry)
            return step.next
        if isinstance(step, ast.TryStep):
            return await self.try_step(step, frame, inline_try, entry)
        raise TypeError(f"unknown step {step!r}")

    # -- assign

    def check_memory(self, frame: _Frame) -> None:
        if frame.scope.memory() > MEMORY_LIMIT_BYTES:
            raise WorkflowError.tagged(
                "ResourceLimitError",
                f"the variables of the execution exceed the memory limit of {MEMORY_LIMIT_BYTES // 1024} KB",
            )

    # -- call

    async def call_step(self, step: ast.CallStep, frame: _Frame, counted: bool) -> str | None:
        args: dict[str, Any] = {}
        try:
            templates = self.templates
            for name, template in step.args:
                code = templates[id(template)]
                value = code.run(frame)
                args[name] = await value if code.awaits else value
        except WorkflowError:
            if counted:
                self.count(frame, step)
            else:
                self.meter.inline_call(external=False)
            raise
        external = step.function in EXTERNAL_FUNCTIONS or (
            step.function in HTTP_FUNCTIONS
            and isinstance(args.get("url"), str)
            and not self.host.is_internal_url(args["url"])
        )
        if counted:
            self.count(frame, step, external=external)
        else:  # inline in a switch condition: a call request of its own under the per-assignment reading
            self.meter.inline_call(external=external)
        if step.kind == "subworkflow":
            value = await self.invoke(step.function, args, frame)
        elif step.kind == "connector":
            value = await self.host.call_connector(step.function, args)
        else:
            builtin = BUILTINS[step.function]
            value = await self.call_builtin(builtin, builtin.bind_named(args))
            if step.function in RETURNS_ARGUMENT:  # may be (part of) an argument: store a copy
                value = deep_copy(value)
        if step.result is not None:
            self.meter.assignment()  # per-assignment reading: ``result:`` is an assignment
            frame.scope.set(step.result, value)
            self.check_memory(frame)
        return step.next

    # -- switch

    async def switch_step(self, step: ast.SwitchStep, frame: _Frame, entry: int) -> str | None:
        for number, case in enumerate(step.cases, 1):
            code = self.templates[id(case.condition)]
            condition = code.run(frame)
            if code.awaits:
                condition = await condition
            if condition is None:
                condition = False
            if not isinstance(condition, bool):
                raise type_error(f"a switch condition must be a boolean, got {type_name(condition)}")
            if not condition:
                continue
            part = self.open_part(frame, entry, step.name, "STEP_CONDITION", h.PROGRESS_SWITCH, number)
            if case.body is None:
                self.history.close(part, h.SUCCEEDED)
            else:
                target = await self.run_inline(frame, part, case.body, counted=False)
                if target is not None:
                    return target
            return case.next if case.next is not None else step.next
        return step.next

    async def run_inline(
        self, frame: _Frame, part: int, step: ast.Step, *, counted: bool = True
    ) -> str | None:
        """Runs the inline ``step`` of a condition or a ``try`` as the child of ``part``, then ends ``part``
        by the outcome; returns where ``step`` jumps, as ``run_step`` does."""
        saved = frame.entry
        frame.entry = part
        try:
            target = await self.run_step(step, frame, counted=counted)
        except BaseException as error:
            _end(self.history, part, error)
            raise
        finally:
            frame.entry = saved
        self.history.close(part, h.SUCCEEDED)
        return target

    def open_part(
        self,
        frame: _Frame,
        block: int,
        name: str,
        kind: str,
        progress: str | None = None,
        number: int | None = None,
        expected: int | None = None,
    ) -> int:
        """Opens the entry of one part of the block step ``block`` (an iteration, a branch, a condition, an
        attempt, the except part), a child of ``block``."""
        part = frame.current = self.history.open(frame.routine, name, kind, block, progress, number)
        if expected is not None and self.history.detailed:
            self.history.extra(part).expected_iteration = expected
        return part

    # -- for

    async def loop_values(self, step: ast.ForStep, frame: _Frame) -> list[Any]:
        if step.items is not None:
            items = await self.evaluate(step.items, frame)
            if isinstance(items, list):
                return items
            raise type_error(f"for 'in' needs a list, got {type_name(items)} (use keys() for a map)")
        assert step.range is not None
        bounds = await self.evaluate(step.range, frame)
        if not isinstance(bounds, list) or len(bounds) != 2 or not all(is_number(b) for b in bounds):
            raise type_error("for 'range' needs a list of two numbers")
        start, end = bounds
        if is_int(start) and is_int(end):
            if end - start > 10_000_000:
                raise WorkflowError.tagged("ResourceLimitError", "range too large")
            return list(range(start, end + 1))
        values: list[Any] = []
        current = float(start)
        while current <= end:
            values.append(current)
            current += 1
            if len(values) > 10_000_000:
                raise WorkflowError.tagged("ResourceLimitError", "range too large")
        return values

    async def for_step(self, step: ast.ForStep, frame: _Frame, entry: int) -> None:
        values = await self.loop_values(step, frame)
        loop_frame = frame.child(Scope(frame.scope))
        expected = len(values)
        for index, value in enumerate(values):
            if step.value:
                loop_frame.scope.define(step.value, deep_copy(value))
            if step.index:
                loop_frame.scope.define(step.index, index)
            part = loop_frame.entry = self.open_part(
                loop_frame, entry, step.name, "STEP_FOR_ITERATION", h.PROGRESS_FOR, index + 1, expected
            )
            try:
                await self.run_steps(step.steps, loop_frame)
            except BaseException as error:
                _end(self.history, part, error)
                if isinstance(error, _Break):
                    break
                if isinstance(error, _Continue):
                    continue
                raise
            self.history.close(part, h.SUCCEEDED)

    # -- parallel

    async def parallel_step(self, step: ast.ParallelStep, frame: _Frame, entry: int) -> None:
        limit = MAX_CONCURRENT_BRANCHES
        if step.concurrency_limit is not None:
            requested = await self.evaluate(step.concurrency_limit, frame)
            if not is_int(requested) or requested < 1:
                raise WorkflowError.tagged("ValueError", "concurrency_limit must be a positive integer")
            limit = min(limit, requested)
        semaphore = asyncio.Semaphore(limit)
        jobs = await self.parallel_jobs(step, frame)

        async def run(number: int, job: tuple[str, tuple[ast.Step, ...], Scope]) -> WorkflowError | None:
            async with semaphore:
                return await self.run_branch(step, frame, entry, number, job, len(jobs))

        tasks = [asyncio.ensure_future(run(number, job)) for number, job in enumerate(jobs, 1)]
        try:
            outcomes = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        failures = [(job[0], error) for job, error in zip(jobs, outcomes, strict=True) if error is not None]
        if failures:
            raise WorkflowError(
                {
                    "message": "UnhandledBranchError: One or more branches or iterations encountered an unhandled runtime error",
                    "tags": ["UnhandledBranchError"],
                    "branches": [
                        {"id": branch_id, "error": error.payload}
                        for branch_id, error in failures[:MAX_UNHANDLED_BRANCH_ERRORS]
                    ],
                }
            )

    async def run_branch(
        self,
        step: ast.ParallelStep,
        frame: _Frame,
        entry: int,
        number: int,
        job: tuple[str, tuple[ast.Step, ...], Scope],
        total: int,
    ) -> WorkflowError | None:
        """Branch or iteration ``number`` of ``total``, in a thread of its own (its entries' ``threadId``:
        "2", or "1.2" inside the first branch of an outer parallel step); returns its unhandled error."""
        if step.branches is not None:
            kind, name, progress, expected = (
                "STEP_PARALLEL_BRANCH_ENTRY",
                job[0],
                h.PROGRESS_PARALLEL_BRANCH,
                None,
            )
        else:
            kind, name, progress, expected = "STEP_FOR_ITERATION", step.name, h.PROGRESS_PARALLEL_FOR, total
        part = self.open_part(frame, entry, name, kind, progress, number, expected)
        outer = self.history.thread_id(entry)
        self.history.extra(part).thread_id = f"{outer}.{number}" if outer else str(number)
        branch_frame = frame.child(job[2])
        branch_frame.entry = part
        try:
            await self.run_steps(job[1], branch_frame)
        except BaseException as error:
            _end(self.history, part, error)
            if isinstance(error, WorkflowError):
                return error
            if isinstance(error, (_Return, _End, _Break, _Continue)):
                return None
            raise
        self.history.close(part, h.SUCCEEDED)
        return None

    async def parallel_jobs(
        self, step: ast.ParallelStep, frame: _Frame
    ) -> list[tuple[str, tuple[ast.Step, ...], Scope]]:
        """(id, steps, scope) of each branch or iteration; the id is what ``UnhandledBranchError`` names."""
        if step.branches is not None:
            return [(branch.name, branch.steps, Scope(frame.scope)) for branch in step.branches]
        assert step.loop is not None
        loop = step.loop
        jobs: list[tuple[str, tuple[ast.Step, ...], Scope]] = []
        for index, value in enumerate(await self.loop_values(loop, frame)):
            values: dict[str, Any] = {}
            if loop.value:
                values[loop.value] = deep_copy(value)
            if loop.index:
                values[loop.index] = index
            jobs.append((str(index), loop.steps, Scope(frame.scope, values)))
        return jobs

    # -- try / retry / except

    async def try_step(self, step: ast.TryStep, frame: _Frame, inline: bool, entry: int) -> str | None:
        retries = 0
        policy: tuple[Any, int, float, float, float] | None = None
        while True:
            if retries:
                part = self.open_part(frame, entry, step.name, "STEP_RETRY", h.PROGRESS_RETRY, retries)
            else:
                part = self.open_part(frame, entry, step.name, "STEP_TRY")
            try:
                if inline:
                    target = await self.run_inline(frame, part, step.body[0])
                    if target is not None:
                        return target
                else:
                    await self.run_part(frame, part, step.body)
                return step.next
            except WorkflowError as error:
                if step.retry is not None:
                    if policy is None:
                        policy = await self.retry_policy(step.retry, frame)
                    predicate, max_retries, initial, maximum, multiplier = policy
                    if retries < max_retries and await self.predicate(predicate, error.payload, frame):
                        delay = min(initial * multiplier**retries, maximum)
                        retries += 1
                        await self.host.clock.sleep(delay)
                        if not inline:
                            self.count(frame, step)
                        continue
                if step.except_steps is None:
                    raise
                if step.except_as:
                    # a copy: the payload may be a variable's value (``raise: ${x}``)
                    frame.scope.set(step.except_as, deep_copy(error.payload))
                part = self.open_part(frame, entry, step.name, "STEP_EXCEPT")
                await self.run_part(frame, part, step.except_steps)
                return step.next

    async def retry_policy(
        self, template: ast.Template, frame: _Frame
    ) -> tuple[Any, int, float, float, float]:
        policy = await self.evaluate(template, frame)
        if not isinstance(policy, dict):
            raise type_error("retry must be a policy map")
        predicate = policy.get("predicate", ast.FunctionRef("http.default_retry_predicate"))
        max_retries = policy.get("max_retries", 0)
        backoff = policy.get("backoff") or {"initial_delay": 1, "max_delay": 60, "multiplier": 1.25}
        if not is_int(max_retries) or max_retries < 0:
            raise WorkflowError.tagged("ValueError", "max_retries must be a non-negative integer")
        if not isinstance(backoff, dict):
            raise type_error("backoff must be a map")
        numbers = [
            backoff.get("initial_delay", 1),
            backoff.get("max_delay", 60),
            backoff.get("multiplier", 1.25),
        ]
        if not all(is_number(n) and n >= 0 for n in numbers):
            raise WorkflowError.tagged("ValueError", "backoff values must be non-negative numbers")
        return predicate, max_retries, float(numbers[0]), float(numbers[1]), float(numbers[2])

    async def predicate(self, predicate: Any, payload: Any, frame: _Frame) -> bool:
        if isinstance(predicate, ast.FunctionRef):
            outcome = await self.call_function(predicate.name, [payload], frame)
        else:
            raise type_error(f"a retry predicate must be a function, got {type_name(predicate)}")
        if not isinstance(outcome, bool):
            raise type_error(f"the retry predicate returned a {type_name(outcome)}, not a boolean")
        return outcome

    async def call_function(self, name: str, args: list[Any], frame: _Frame) -> Any:
        """A subworkflow or a built-in called by name with positional arguments (a retry predicate)."""
        if name in self.routines:
            return await frame.call_routine(name, args)
        builtin = BUILTINS.get(name)
        if builtin is None:
            raise WorkflowError.tagged("KeyError", f"function '{name}' not found")
        return await self.call_builtin(builtin, builtin.bind_positional(args))

    async def call_builtin(self, builtin: Builtin, bound: list[Any]) -> Any:
        return await builtin.fn(self.host, *bound) if builtin.is_async else builtin.fn(self.host, *bound)


class _Frame:
    """One routine invocation (or a loop body / parallel branch within it)."""

    __slots__ = (
        "caller",
        "current",
        "depth",
        "entry",
        "execution",
        "host",
        "routine",
        "scope",
        "step",
    )

    def __init__(
        self, execution: _Execution, scope: Scope, routine: str, depth: int, caller: _Frame | None
    ) -> None:
        self.execution = execution
        self.host = execution.host
        self.scope = scope
        self.routine = routine
        self.depth = depth
        self.caller = caller
        self.step: ast.Step | None = None
        # step entries: the one new entries belong to, and the last one opened in this frame (where a
        # subworkflow called from here steps out to)
        self.entry = 0  # 0: none
        self.current = 0

    def child(self, scope: Scope) -> _Frame:
        frame = _Frame(self.execution, scope, self.routine, self.depth, self.caller)
        frame.step = self.step
        frame.entry = frame.current = self.current
        return frame

    async def call_routine(self, name: str, args: list[Any]) -> Any:
        routine = self.execution.routines[name]
        if len(args) > len(routine.params):
            raise type_error(f"subworkflow '{name}' takes at most {len(routine.params)} arguments")
        return await self.execution.invoke(
            name, {p.name: a for p, a in zip(routine.params, args, strict=False)}, self
        )

    def stack(self, step: ast.Step) -> list[dict[str, Any]]:
        elements = [
            {
                "step": step.name,
                "routine": self.routine,
                "line": step.position.line,
                "column": step.position.column,
            }
        ]
        caller = self.caller
        while caller is not None:
            if caller.step is not None:
                current = caller.step
                elements.append(
                    {
                        "step": current.name,
                        "routine": caller.routine,
                        "line": current.position.line,
                        "column": current.position.column,
                    }
                )
            caller = caller.caller
        return elements


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
    except (_Break, _Continue, _Jump) as stray:  # excluded by the loader's checks
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
