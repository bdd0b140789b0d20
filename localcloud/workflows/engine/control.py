"""The block steps (``switch``, ``for``, ``parallel``, ``try``) and the step entries of their parts."""

from __future__ import annotations

import asyncio
from typing import Any

from localcloud.workflows.engine import history as h
from localcloud.workflows.engine.calls import call_function
from localcloud.workflows.engine.frames import (
    Break,
    Continue,
    End,
    Execution,
    Frame,
    Return,
    end_entry,
)
from localcloud.workflows.engine.scope import Scope
from localcloud.workflows.lang import ast
from localcloud.workflows.lang.errors import WorkflowError
from localcloud.workflows.lang.values import deep_copy, is_int, is_number, type_error, type_name

MAX_CONCURRENT_BRANCHES = 20
MAX_UNHANDLED_BRANCH_ERRORS = 100

_Job = tuple[str, tuple[ast.Step, ...], Scope]  # (id, steps, scope) of a parallel branch or iteration


def open_part(
    run: Execution,
    frame: Frame,
    block: int,
    name: str,
    kind: str,
    progress: str | None = None,
    number: int | None = None,
    expected: int | None = None,
) -> int:
    """Opens the entry of one part of the block step ``block`` (an iteration, a branch, a condition, an
    attempt, the except part), a child of ``block``."""
    part = frame.current = run.history.open(frame.routine, name, kind, block, progress, number)
    if expected is not None and run.history.detailed:
        run.history.extra(part).expected_iteration = expected
    return part


async def run_part(run: Execution, frame: Frame, entry: int, steps: tuple[ast.Step, ...]) -> None:
    """Runs ``steps`` as the children of ``entry`` (a part of a block step), then ends ``entry`` by the
    outcome."""
    saved = frame.entry
    frame.entry = entry
    try:
        await run.run_steps(steps, frame)
    except BaseException as error:
        end_entry(run.history, entry, error)
        raise
    finally:
        frame.entry = saved
    run.history.close(entry, h.SUCCEEDED)


async def run_inline(
    run: Execution, frame: Frame, part: int, step: ast.Step, *, counted: bool = True
) -> str | None:
    """Runs the inline ``step`` of a condition or a ``try`` as the child of ``part``, then ends ``part``
    by the outcome; returns where ``step`` jumps, as ``run_step`` does."""
    saved = frame.entry
    frame.entry = part
    try:
        target = await run.run_step(step, frame, counted=counted)
    except BaseException as error:
        end_entry(run.history, part, error)
        raise
    finally:
        frame.entry = saved
    run.history.close(part, h.SUCCEEDED)
    return target


# -- switch


async def switch_step(run: Execution, step: ast.SwitchStep, frame: Frame, entry: int) -> str | None:
    for number, case in enumerate(step.cases, 1):
        code = run.templates[id(case.condition)]
        condition = code.run(frame)
        if code.awaits:
            condition = await condition
        if condition is None:
            condition = False
        if not isinstance(condition, bool):
            raise type_error(f"a switch condition must be a boolean, got {type_name(condition)}")
        if not condition:
            continue
        part = open_part(run, frame, entry, step.name, "STEP_CONDITION", h.PROGRESS_SWITCH, number)
        if case.body is None:
            run.history.close(part, h.SUCCEEDED)
        else:
            target = await run_inline(run, frame, part, case.body, counted=False)
            if target is not None:
                return target
        return case.next if case.next is not None else step.next
    return step.next


# -- for


async def loop_values(run: Execution, step: ast.ForStep, frame: Frame) -> list[Any]:
    if step.items is not None:
        items = await run.evaluate(step.items, frame)
        if isinstance(items, list):
            return items
        raise type_error(f"for 'in' needs a list, got {type_name(items)} (use keys() for a map)")
    assert step.range is not None
    bounds = await run.evaluate(step.range, frame)
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


async def for_step(run: Execution, step: ast.ForStep, frame: Frame, entry: int) -> None:
    values = await loop_values(run, step, frame)
    loop_frame = frame.child(Scope(frame.scope))
    expected = len(values)
    for index, value in enumerate(values):
        if step.value:
            loop_frame.scope.define(step.value, deep_copy(value))
        if step.index:
            loop_frame.scope.define(step.index, index)
        part = loop_frame.entry = open_part(
            run, loop_frame, entry, step.name, "STEP_FOR_ITERATION", h.PROGRESS_FOR, index + 1, expected
        )
        try:
            await run.run_steps(step.steps, loop_frame)
        except BaseException as error:
            end_entry(run.history, part, error)
            if isinstance(error, Break):
                break
            if isinstance(error, Continue):
                continue
            raise
        run.history.close(part, h.SUCCEEDED)


# -- parallel


async def parallel_step(run: Execution, step: ast.ParallelStep, frame: Frame, entry: int) -> None:
    limit = MAX_CONCURRENT_BRANCHES
    if step.concurrency_limit is not None:
        requested = await run.evaluate(step.concurrency_limit, frame)
        if not is_int(requested) or requested < 1:
            raise WorkflowError.tagged("ValueError", "concurrency_limit must be a positive integer")
        limit = min(limit, requested)
    semaphore = asyncio.Semaphore(limit)
    jobs = await parallel_jobs(run, step, frame)

    async def branch(number: int, job: _Job) -> WorkflowError | None:
        async with semaphore:
            return await run_branch(run, step, frame, entry, number, job, len(jobs))

    tasks = [asyncio.ensure_future(branch(number, job)) for number, job in enumerate(jobs, 1)]
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
    run: Execution,
    step: ast.ParallelStep,
    frame: Frame,
    entry: int,
    number: int,
    job: _Job,
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
    part = open_part(run, frame, entry, name, kind, progress, number, expected)
    outer = run.history.thread_id(entry)
    run.history.extra(part).thread_id = f"{outer}.{number}" if outer else str(number)
    branch_frame = frame.child(job[2])
    branch_frame.entry = part
    try:
        await run.run_steps(job[1], branch_frame)
    except BaseException as error:
        end_entry(run.history, part, error)
        if isinstance(error, WorkflowError):
            return error
        if isinstance(error, (Return, End, Break, Continue)):
            return None
        raise
    run.history.close(part, h.SUCCEEDED)
    return None


async def parallel_jobs(run: Execution, step: ast.ParallelStep, frame: Frame) -> list[_Job]:
    """(id, steps, scope) of each branch or iteration; the id is what ``UnhandledBranchError`` names."""
    if step.branches is not None:
        return [(branch.name, branch.steps, Scope(frame.scope)) for branch in step.branches]
    assert step.loop is not None
    loop = step.loop
    jobs: list[_Job] = []
    for index, value in enumerate(await loop_values(run, loop, frame)):
        values: dict[str, Any] = {}
        if loop.value:
            values[loop.value] = deep_copy(value)
        if loop.index:
            values[loop.index] = index
        jobs.append((str(index), loop.steps, Scope(frame.scope, values)))
    return jobs


# -- try / retry / except


async def try_step(run: Execution, step: ast.TryStep, frame: Frame, inline: bool, entry: int) -> str | None:
    retries = 0
    policy: tuple[Any, int, float, float, float] | None = None
    while True:
        if retries:
            part = open_part(run, frame, entry, step.name, "STEP_RETRY", h.PROGRESS_RETRY, retries)
        else:
            part = open_part(run, frame, entry, step.name, "STEP_TRY")
        try:
            if inline:
                target = await run_inline(run, frame, part, step.body[0])
                if target is not None:
                    return target
            else:
                await run_part(run, frame, part, step.body)
            return step.next
        except WorkflowError as error:
            if step.retry is not None:
                if policy is None:
                    policy = await retry_policy(run, step.retry, frame)
                predicate, max_retries, initial, maximum, multiplier = policy
                if retries < max_retries and await should_retry(run, predicate, error.payload, frame):
                    delay = min(initial * multiplier**retries, maximum)
                    retries += 1
                    await run.host.clock.sleep(delay)
                    if not inline:
                        run.count(frame, step)
                    continue
            if step.except_steps is None:
                raise
            if step.except_as:
                # a copy: the payload may be a variable's value (``raise: ${x}``)
                frame.scope.set(step.except_as, deep_copy(error.payload))
            part = open_part(run, frame, entry, step.name, "STEP_EXCEPT")
            await run_part(run, frame, part, step.except_steps)
            return step.next


async def retry_policy(
    run: Execution, template: ast.Template, frame: Frame
) -> tuple[Any, int, float, float, float]:
    policy = await run.evaluate(template, frame)
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


async def should_retry(run: Execution, predicate: Any, payload: Any, frame: Frame) -> bool:
    """The retry policy's ``predicate`` called with the error ``payload``."""
    if isinstance(predicate, ast.FunctionRef):
        outcome = await call_function(run, predicate.name, [payload], frame)
    else:
        raise type_error(f"a retry predicate must be a function, got {type_name(predicate)}")
    if not isinstance(outcome, bool):
        raise type_error(f"the retry predicate returned a {type_name(outcome)}, not a boolean")
    return outcome
