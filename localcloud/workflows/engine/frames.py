"""The frame of a running routine, the signals a step leaves by, and the execution as steps see it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol

from localcloud.workflows.engine import history as h
from localcloud.workflows.engine.compiler import Code
from localcloud.workflows.engine.history import StepHistory
from localcloud.workflows.engine.host import Host
from localcloud.workflows.engine.metering import StepMeter
from localcloud.workflows.engine.scope import Scope
from localcloud.workflows.lang import ast
from localcloud.workflows.lang.errors import WorkflowError
from localcloud.workflows.lang.values import MEMORY_LIMIT_BYTES, type_error


class Jump(Exception):
    def __init__(self, target: str) -> None:
        self.target = target


class Break(Exception):
    pass


class Continue(Exception):
    pass


class Return(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


class End(Exception):
    pass


LEAVES = (Jump, Break, Continue, Return, End)  # a step that ends this way has succeeded


class Execution(Protocol):
    """What the step executors (``control.py``, ``calls.py``) and a ``Frame`` use of the running execution
    (``interpreter.py``)."""

    routines: dict[str, ast.Routine]
    templates: dict[int, Code]
    host: Host
    meter: StepMeter
    history: StepHistory

    def count(
        self, frame: Frame, step: ast.Step, *, external: bool = False, assign: bool = False
    ) -> None: ...

    async def evaluate(self, template: ast.Template, frame: Frame) -> Any: ...

    async def invoke(self, name: str, args: Mapping[str, Any], caller: Frame | None) -> Any: ...

    async def run_steps(self, steps: tuple[ast.Step, ...], frame: Frame) -> None: ...

    async def run_step(self, step: ast.Step, frame: Frame, *, counted: bool = True) -> str | None: ...


def end_entry(history: StepHistory, entry: int, error: BaseException) -> None:
    """Ends ``entry``, left by ``error``: FAILED with a workflow error (or an engine defect), SUCCEEDED
    when it left by ``next``, ``return``, ``break``, ``continue`` or ``end``, CANCELLED when cancelled."""
    if isinstance(error, WorkflowError):
        history.close(entry, h.FAILED, error.payload)
    elif isinstance(error, LEAVES):
        history.close(entry, h.SUCCEEDED)
    elif isinstance(error, asyncio.CancelledError):
        history.close(entry, h.CANCELLED)
    else:
        history.close(entry, h.FAILED)


def check_memory(frame: Frame) -> None:
    if frame.scope.memory() > MEMORY_LIMIT_BYTES:
        raise WorkflowError.tagged(
            "ResourceLimitError",
            f"the variables of the execution exceed the memory limit of {MEMORY_LIMIT_BYTES // 1024} KB",
        )


class Frame:
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
        self, execution: Execution, scope: Scope, routine: str, depth: int, caller: Frame | None
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

    def child(self, scope: Scope) -> Frame:
        frame = Frame(self.execution, scope, self.routine, self.depth, self.caller)
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
