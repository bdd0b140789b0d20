"""The deploy-time checks that need the whole program, made in one pass over the finished AST (the
grammar was enforced while it was built; see ``builder.py``).

The real service refuses at deploy time (https://cloud.google.com/workflows/docs/reference/syntax,
https://cloud.google.com/workflows/docs/reference/syntax/parallel-steps and
https://cloud.google.com/workflows/docs/reference/stdlib/overview):

- a function called in an expression that does not exist, is blocking (a call step's job), or gets a
  number of arguments it does not take; a subworkflow called with too few or too many;
- a call step naming an unknown function, an argument the function does not have, or missing a required
  one; a connector name not of the form ``googleapis.SERVICE.VERSION.RESOURCE….METHOD``
  (https://cloud.google.com/workflows/docs/reference/googleapis). A well-formed connector name deploys
  whether or not this engine routes it, as on Google, where a workflow naming any connector deploys and
  runs its other paths; calling one this engine does not route fails at run time (``connectors.py``); the
  Kubernetes API connector's ``gke.*`` functions are connectors too; in an expression, only the connectors
  of ``host.EXPRESSION_CONNECTORS`` may be called (``accessString``), with 1 to 3 arguments;
- a retry predicate that names no function; a ``retry`` map without a ``predicate``: "If you don't specify
  a default retry policy, a retry predicate is required"
  (https://cloud.google.com/workflows/docs/reference/syntax/retrying). Without this check such a block
  would retry with ``http.default_retry_predicate``, which never retries a raised string or map;
- inside a parallel step, a write to a parent variable not declared ``shared``; a ``shared`` variable
  not assigned before the parallel step;
- ``next`` to a step out of reach, ``break``/``continue`` outside a for loop; two steps of one routine
  with the same name.

Each routine is walked in document order, so the first mistake in the text is the one reported.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from localcloud.workflows.engine.host import EXPRESSION_CONNECTORS, KUBERNETES_CONNECTORS
from localcloud.workflows.engine.stdlib import BUILTINS
from localcloud.workflows.lang import ast
from localcloud.workflows.lang.errors import DeployError

__all__ = ["check_program"]

_CONNECTOR_PARTS = 5  # googleapis, the service, the version, at least one resource, the method


def check_program(program: ast.Program, connectors: frozenset[str]) -> None:
    """Raises ``DeployError`` for the first mistake, naming the step, the line and the column.

    ``connectors``: the connector names the caller routes; any well-formed name deploys, so they only
    matter when the connector is called (see the module docstring)."""
    checker = _Checker(program, connectors)
    for routine in program.routines.values():
        checker.routine(routine)


@dataclass(frozen=True)
class _Vars:
    """The variables a step sees: ``parent`` (those it may not write inside a parallel step unless they
    are ``shared``), and ``shared`` (None outside any parallel step)."""

    parent: frozenset[str]
    shared: frozenset[str] | None = None


class _Checker:
    def __init__(self, program: ast.Program, connectors: frozenset[str]) -> None:
        self.program = program
        self.connectors = connectors
        self.lines = program.source.splitlines()
        self.assigned: set[str] = set()  # variables of the routine assigned so far, in document order

    def error(self, message: str, step: str | None, at: ast.Position | None, shift: int = 0) -> DeployError:
        if at is None:
            return DeployError(message, step=step)
        line = at.line
        source_line = self.lines[line - 1] if 0 < line <= len(self.lines) else None
        return DeployError(message, step=step, line=line, column=at.column + shift, source_line=source_line)

    def routine(self, routine: ast.Routine) -> None:
        self.assigned = set()
        self.steps(routine.steps, _Vars(frozenset(p.name for p in routine.params)))
        self.jumps(routine.steps, [], in_loop=False)
        self.unique(routine.steps, routine.name)

    # -- steps, in document order

    def steps(self, steps: tuple[ast.Step, ...], variables: _Vars) -> None:
        for step in steps:
            self.step(step, variables)

    def step(self, step: ast.Step, variables: _Vars) -> None:
        if isinstance(step, ast.AssignStep):
            for assignment in step.assignments:
                for part in assignment.path:
                    self.expression(part, step.name, assignment.position)
                self.template(assignment.value, step.name)
                self.write(assignment.target, step.name, assignment.position, variables)
        elif isinstance(step, ast.CallStep):
            for _, template in step.args:
                self.template(template, step.name)
            self.call_step(step)
            if step.result is not None:
                self.write(step.result, step.name, step.result_position, variables)
        elif isinstance(step, ast.ReturnStep | ast.RaiseStep):
            self.template(step.value, step.name)
        elif isinstance(step, ast.StepsStep):
            self.steps(step.steps, variables)
        elif isinstance(step, ast.SwitchStep):
            for case in step.cases:
                self.template(case.condition, step.name)
                if case.body is not None:
                    self.step(case.body, variables)
        elif isinstance(step, ast.ForStep):
            self.for_step(step, variables)
        elif isinstance(step, ast.ParallelStep):
            self.parallel_step(step, variables)
        elif isinstance(step, ast.TryStep):
            self.try_step(step, variables)

    def for_step(self, step: ast.ForStep, variables: _Vars) -> None:
        for template in (step.items, step.range):
            if template is not None:
                self.template(template, step.name)
        self.steps(step.steps, variables)

    def parallel_step(self, step: ast.ParallelStep, variables: _Vars) -> None:
        for variable, at in zip(step.shared, step.shared_positions, strict=True):
            if variable not in variables.parent and variable not in self.assigned:
                raise self.error(
                    f"shared variable '{variable}' must be assigned before the parallel step", step.name, at
                )
        if step.concurrency_limit is not None:
            self.template(step.concurrency_limit, step.name)
        outside = variables.shared is None
        visible = variables.parent | self.assigned if outside else variables.parent
        inner = _Vars(visible, frozenset(step.shared) | (variables.shared or frozenset()))
        for branch in step.branches or ():
            self.steps(branch.steps, inner)
            self.jumps(branch.steps, [], in_loop=False)
        if step.loop is not None:
            self.for_step(step.loop, inner)

    def try_step(self, step: ast.TryStep, variables: _Vars) -> None:
        self.steps(step.body, variables)
        if step.retry is not None:
            self.template(step.retry, step.name)
            self.retry_predicate(step.retry, step.name, step.position)
        if step.except_as is not None:
            self.write(step.except_as, step.name, step.except_as_position, variables)
        if step.except_steps is not None:
            self.steps(step.except_steps, variables)

    def write(self, variable: str, step: str, at: ast.Position | None, variables: _Vars) -> None:
        shared = variables.shared
        if shared is None:
            self.assigned.add(variable)
        elif variable in variables.parent and variable not in shared:
            raise self.error(
                f"variable '{variable}' is not declared 'shared' and cannot be written inside a parallel step",
                step,
                at,
            )

    # -- functions

    def template(self, template: ast.Template, step: str) -> None:
        if isinstance(template, ast.ExprTemplate):
            self.expression(template.expr, step, template.position, template.expr_column)
        elif isinstance(template, ast.ListTemplate):
            for item in template.items:
                self.template(item, step)
        elif isinstance(template, ast.MapTemplate):
            for _, value in template.entries:
                self.template(value, step)

    def expression(
        self, expr: ast.Expr, step: str, at: ast.Position | None, column: int | None = None
    ) -> None:
        """``column``: where the expression's text starts (default: at ``at``)."""
        if at is not None and column is not None:
            at = ast.Position(at.line, column)
        for call in calls(expr):
            self.expression_call(call, step, at)

    def expression_call(self, call: ast.Call, step: str, at: ast.Position | None) -> None:
        name, count, shift = call.function, len(call.args), call.offset
        routine = self.program.routines.get(name)
        if routine is not None:
            required = sum(1 for p in routine.params if not p.has_default)
            if not required <= count <= len(routine.params):
                message = (
                    f"subworkflow '{name}' takes {required} to {len(routine.params)} arguments, {count} given"
                )
                raise self.error(message, step, at, shift)
            return
        connector = EXPRESSION_CONNECTORS.get(name)
        if connector is not None:
            if not 1 <= count <= len(connector):
                raise self.error(
                    f"'{name}' takes 1 to {len(connector)} arguments, {count} given", step, at, shift
                )
            return
        builtin = BUILTINS.get(name)
        if builtin is None:
            raise self.error(f"unknown function '{name}'", step, at, shift)
        if builtin.blocking:
            message = f"'{name}' is a blocking call and cannot be used in an expression; use a call step"
            raise self.error(message, step, at, shift)
        if not len(builtin.required) <= count <= len(builtin.params):
            raise self.error(f"'{name}' takes {builtin._arity()} arguments, {count} given", step, at, shift)

    def call_step(self, step: ast.CallStep) -> None:
        function, names = step.function, [name for name, _ in step.args]
        routine = self.program.routines.get(function)
        if routine is not None:
            known = {p.name for p in routine.params}
            for arg in names:
                if arg not in known:
                    message = f"subworkflow '{function}' has no parameter '{arg}'"
                    raise self.error(message, step.name, step.args_position)
            for param in routine.params:
                if not param.has_default and param.name not in names:
                    message = f"missing argument '{param.name}' for subworkflow '{function}'"
                    raise self.error(message, step.name, step.call_position)
        elif function in KUBERNETES_CONNECTORS:
            pass
        elif function.startswith("googleapis."):
            parts = function.split(".")
            if len(parts) < _CONNECTOR_PARTS or not all(parts):
                message = (
                    f"'{function}' is not a connector name: expected "
                    "googleapis.SERVICE.VERSION.RESOURCE.METHOD, e.g. googleapis.pubsub.v1.projects.topics.publish"
                )
                raise self.error(message, step.name, step.call_position)
        elif function in BUILTINS:
            builtin = BUILTINS[function]
            for arg in names:
                if arg not in builtin.params:
                    raise self.error(f"'{function}' has no argument '{arg}'", step.name, step.args_position)
            for required in builtin.required:
                if required not in names:
                    message = f"'{function}' needs the argument '{required}'"
                    raise self.error(message, step.name, step.call_position)
        else:
            raise self.error(f"unknown function '{function}'", step.name, step.call_position)

    def retry_predicate(self, retry: ast.Template, step: str, at: ast.Position | None) -> None:
        """A policy map needs a predicate; a policy given as an expression (``${http.default_retry}``, a
        variable) is checked when the step runs."""
        if isinstance(retry, ast.Const) and isinstance(retry.value, Mapping):
            keys: set[str] = set(retry.value)
        elif isinstance(retry, ast.MapTemplate):
            keys = {key for key, _ in retry.entries}
        else:
            return
        if "predicate" not in keys:
            message = (
                f"the retry of step '{step}' has neither a policy nor a predicate: give it a policy "
                "(retry: ${http.default_retry}) or a predicate (predicate: ${http.default_retry_predicate})"
            )
            raise self.error(message, step, at)
        if not isinstance(retry, ast.MapTemplate):
            return
        for key, value in retry.entries:
            if key == "predicate" and isinstance(value, ast.ExprTemplate):
                target = value.source[2:-1].strip()
                if target not in self.program.routines and target not in BUILTINS and "(" not in target:
                    raise self.error(f"unknown retry predicate '{target}'", step, value.position)

    # -- jumps and names

    def jumps(self, steps: tuple[ast.Step, ...], outer: list[set[str]], *, in_loop: bool) -> None:
        scopes = [{s.name for s in steps}, *outer]
        for step in steps:
            targets = [step.next]
            if isinstance(step, ast.SwitchStep):
                targets += [case.next for case in step.cases]
            for target in targets:
                if target is None or target == "end":
                    continue
                if target in ("break", "continue"):
                    if not in_loop:
                        raise self.error(f"'next: {target}' outside a for loop", step.name, step.position)
                elif not any(target in scope for scope in scopes):
                    raise self.error(f"'next' names a missing step '{target}'", step.name, step.position)
            for child, child_loop in children(step):
                self.jumps(
                    child,
                    scopes if not child_loop else [],
                    in_loop=child_loop or (in_loop and not isinstance(step, ast.ParallelStep)),
                )

    def unique(self, steps: tuple[ast.Step, ...], routine: str) -> None:
        seen: dict[str, ast.Step] = {}
        for step in walk(steps):
            earlier = seen.get(step.name)
            if earlier is not None and earlier is not step and earlier.position != step.position:
                message = f"duplicate step name '{step.name}' in routine '{routine}'"
                raise self.error(message, step.name, step.position)
            seen[step.name] = step


def children(step: ast.Step) -> Iterator[tuple[tuple[ast.Step, ...], bool]]:
    """The step lists directly inside ``step`` (parallel branches aside), each with whether it is a loop."""
    if isinstance(step, ast.StepsStep):
        yield step.steps, False
    elif isinstance(step, ast.ForStep):
        yield step.steps, True
    elif isinstance(step, ast.TryStep):
        yield step.body, False
        if step.except_steps is not None:
            yield step.except_steps, False
    elif isinstance(step, ast.SwitchStep):
        for case in step.cases:
            if case.body is not None:
                yield (case.body,), False
    elif isinstance(step, ast.ParallelStep) and step.loop is not None:
        yield step.loop.steps, True


def walk(steps: tuple[ast.Step, ...]) -> Iterator[ast.Step]:
    for step in steps:
        yield step
        for child, _ in children(step):
            if len(child) == 1 and child[0].name == step.name:  # try/switch bodies reuse the step's name
                for grandchild, _ in children(child[0]):
                    yield from walk(grandchild)
                continue
            yield from walk(child)


def calls(expr: ast.Expr) -> Iterator[ast.Call]:
    """Every function call in ``expr``, outermost first, left to right."""
    if isinstance(expr, ast.Call):
        yield expr
        for arg in expr.args:
            yield from calls(arg)
    elif isinstance(expr, ast.Member):
        yield from calls(expr.target)
    elif isinstance(expr, ast.Index):
        yield from calls(expr.target)
        yield from calls(expr.index)
    elif isinstance(expr, ast.Unary):
        yield from calls(expr.operand)
    elif isinstance(expr, ast.Binary):
        yield from calls(expr.left)
        yield from calls(expr.right)
    elif isinstance(expr, ast.ListLit):
        for item in expr.items:
            yield from calls(item)
    elif isinstance(expr, ast.MapLit):
        for key, value in expr.entries:
            yield from calls(key)
            yield from calls(value)
