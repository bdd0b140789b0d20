"""The ``call`` step and calls by name: subworkflows, connectors and the built-ins of the standard library."""

from __future__ import annotations

from typing import Any

from localcloud.workflows.engine.compiler import RETURNS_ARGUMENT
from localcloud.workflows.engine.frames import Execution, Frame, check_memory
from localcloud.workflows.engine.host import Host
from localcloud.workflows.engine.stdlib import BUILTINS, EXTERNAL_FUNCTIONS, HTTP_FUNCTIONS, Builtin
from localcloud.workflows.lang import ast
from localcloud.workflows.lang.errors import WorkflowError
from localcloud.workflows.lang.values import deep_copy


async def call_step(run: Execution, step: ast.CallStep, frame: Frame, counted: bool) -> str | None:
    args: dict[str, Any] = {}
    try:
        templates = run.templates
        for name, template in step.args:
            code = templates[id(template)]
            value = code.run(frame)
            args[name] = await value if code.awaits else value
    except WorkflowError:
        if counted:
            run.count(frame, step)
        else:
            run.meter.inline_call(external=False)
        raise
    external = step.function in EXTERNAL_FUNCTIONS or (
        step.function in HTTP_FUNCTIONS
        and isinstance(args.get("url"), str)
        and not run.host.is_internal_url(args["url"])
    )
    if counted:
        run.count(frame, step, external=external)
    else:  # inline in a switch condition: a call request of its own under the per-assignment reading
        run.meter.inline_call(external=external)
    if step.kind == "subworkflow":
        value = await run.invoke(step.function, args, frame)
    elif step.kind == "connector":
        value = await run.host.call_connector(step.function, args)
    else:
        builtin = BUILTINS[step.function]
        value = await call_builtin(run.host, builtin, builtin.bind_named(args))
        if step.function in RETURNS_ARGUMENT:  # may be (part of) an argument: store a copy
            value = deep_copy(value)
    if step.result is not None:
        run.meter.assignment()  # per-assignment reading: ``result:`` is an assignment
        frame.scope.set(step.result, value)
        check_memory(frame)
    return step.next


async def call_function(run: Execution, name: str, args: list[Any], frame: Frame) -> Any:
    """A subworkflow or a built-in called by name with positional arguments (a retry predicate)."""
    if name in run.routines:
        return await frame.call_routine(name, args)
    builtin = BUILTINS.get(name)
    if builtin is None:
        raise WorkflowError.tagged("KeyError", f"function '{name}' not found")
    return await call_builtin(run.host, builtin, builtin.bind_positional(args))


async def call_builtin(host: Host, builtin: Builtin, bound: list[Any]) -> Any:
    return await builtin.fn(host, *bound) if builtin.is_async else builtin.fn(host, *bound)
