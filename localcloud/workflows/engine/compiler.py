"""Compiles every value template and assignment path of a loaded workflow to Python closures, once, at
load time: the one way the engine evaluates an expression.

A ``Code`` is ``run(frame) -> value``. Most code is synchronous: no coroutine and no ``isinstance``
dispatch per node. Code that calls a subworkflow (or an asynchronous built-in) somewhere inside has
``awaits`` set: its ``run`` returns an awaitable, and every node above such a call is *lifted*: it
evaluates its parts in the same order, awaiting the ones that await, then combines the values with the
same function as its synchronous form. The semantics of each operator live in ``operators.py``, once.

The AST holds no closures: ``CompiledProgram`` keeps the code beside the AST, keyed by the identity of
each template and assignment node (the program keeps those nodes alive).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from localcloud.workflows.engine.host import EXPRESSION_CONNECTORS
from localcloud.workflows.engine.operators import (
    BINARY_OPERATORS,
    check_boolean,
    get_index,
    get_key,
    logical_not,
    negate,
    string_key,
)
from localcloud.workflows.engine.scope import Frame, Scope
from localcloud.workflows.engine.stdlib import BUILTINS, CONSTANTS, Builtin
from localcloud.workflows.lang import ast
from localcloud.workflows.lang.errors import WorkflowError
from localcloud.workflows.lang.values import deep_copy

Run = Callable[[Frame], Any]

__all__ = ["RETURNS_ARGUMENT", "Code", "CompiledProgram", "compile_program", "may_alias"]


@dataclass(frozen=True, slots=True)
class Code:
    """``run(frame)`` gives the value, or an awaitable of it when ``awaits``. ``aliases`` (templates only):
    whether the value may share lists or maps with a variable, so that assigning it must copy."""

    run: Run
    awaits: bool = False
    aliases: bool = False


@dataclass(frozen=True)
class CompiledProgram:
    """A loaded workflow: its AST and, beside it, the compiled code of every template and assignment path."""

    program: ast.Program
    templates: dict[int, Code]
    paths: dict[int, Code]

    @property
    def routines(self) -> dict[str, ast.Routine]:
        return self.program.routines

    @property
    def main(self) -> ast.Routine:
        return self.program.main

    def template(self, template: ast.Template) -> Code:
        return self.templates[id(template)]

    def path(self, assignment: ast.Assignment) -> Code:
        """The keys of an assignment target such as ``a.b[i]`` (``["b", i]``), evaluated left to right."""
        return self.paths[id(assignment)]


def compile_program(program: ast.Program) -> CompiledProgram:
    routines = program.routines
    templates: dict[int, Code] = {}
    paths: dict[int, Code] = {}
    for routine in routines.values():
        for node in _nodes(routine.steps):
            if isinstance(node, ast.Assignment):
                paths[id(node)] = _sequence([compile_expr(part, routines) for part in node.path])
            else:
                code = compile_template(node, routines)
                templates[id(node)] = Code(code.run, code.awaits, may_alias(node))
    return CompiledProgram(program, templates, paths)


def _nodes(steps: Sequence[ast.Step]) -> Iterator[ast.Template | ast.Assignment]:
    """Every template and assignment inside ``steps``, nested steps included."""
    for step in steps:
        if isinstance(step, ast.AssignStep):
            for assignment in step.assignments:
                yield assignment
                yield assignment.value
        elif isinstance(step, ast.CallStep):
            yield from (template for _, template in step.args)
        elif isinstance(step, ast.ReturnStep | ast.RaiseStep):
            yield step.value
        elif isinstance(step, ast.StepsStep):
            yield from _nodes(step.steps)
        elif isinstance(step, ast.SwitchStep):
            for case in step.cases:
                yield case.condition
                yield from _nodes([case.body] if case.body is not None else [])
        elif isinstance(step, ast.ForStep):
            yield from _loop_nodes(step)
        elif isinstance(step, ast.ParallelStep):
            yield from _parallel_nodes(step)
        elif isinstance(step, ast.TryStep):
            yield from _nodes(step.body)
            yield from [step.retry] if step.retry is not None else []
            yield from _nodes(step.except_steps or ())


def _loop_nodes(step: ast.ForStep) -> Iterator[ast.Template | ast.Assignment]:
    yield from (template for template in (step.items, step.range) if template is not None)
    yield from _nodes(step.steps)


def _parallel_nodes(step: ast.ParallelStep) -> Iterator[ast.Template | ast.Assignment]:
    if step.concurrency_limit is not None:
        yield step.concurrency_limit
    for branch in step.branches or ():
        yield from _nodes(branch.steps)
    if step.loop is not None:
        yield from _loop_nodes(step.loop)


def may_alias(template: ast.Template) -> bool:
    """Whether a template's value may share lists or maps with a variable (so assigning it must copy:
    Workflows values are values, ``b: ${a}`` then ``b.x: 1`` leaves ``a`` alone; so does
    ``b: {"x": ${a}}``)."""
    if isinstance(template, ast.ExprTemplate):
        return _expr_may_alias(template.expr)
    if isinstance(template, ast.ListTemplate):
        return any(may_alias(item) for item in template.items)
    if isinstance(template, ast.MapTemplate):
        return any(may_alias(value) for _, value in template.entries)
    return False


# Built-ins whose result may be (part of) an argument; every other built-in returns a value of its own
# (``list.concat``, ``map.merge`` and the like copy what they take).
RETURNS_ARGUMENT = frozenset({"default", "if", "map.get"})


def _expr_may_alias(expr: ast.Expr) -> bool:
    if isinstance(expr, ast.Call):
        return expr.function in RETURNS_ARGUMENT or expr.function not in BUILTINS
    if isinstance(expr, ast.Name | ast.Member | ast.Index):
        return True
    if isinstance(expr, ast.ListLit):
        return any(_expr_may_alias(item) for item in expr.items)
    if isinstance(expr, ast.MapLit):
        return any(_expr_may_alias(value) for _, value in expr.entries)
    return False


# ----------------------------------------------------------------------------------------- combinators


def _lifted(
    parts: Sequence[Code], finish: Callable[[Frame, list[Any]], Any], *, awaits: bool = False
) -> Code:
    """The awaiting form of a node: its parts evaluated left to right (awaiting those that await), then
    ``finish(frame, values)``, itself awaited when ``awaits``."""

    async def run(frame: Frame) -> Any:
        values = []
        for part in parts:
            value = part.run(frame)
            values.append(await value if part.awaits else value)
        result = finish(frame, values)
        return await result if awaits else result

    return Code(run, awaits=True)


def _combine(parts: Sequence[Code], combine: Callable[..., Any]) -> Code:
    """A node whose value is ``combine(*values of its parts)``, the parts evaluated left to right."""
    if any(part.awaits for part in parts):
        return _lifted(parts, lambda frame, values: combine(*values))
    runs = [part.run for part in parts]
    if len(runs) == 1:
        (only,) = runs
        return Code(lambda frame: combine(only(frame)))
    if len(runs) == 2:
        first, second = runs
        return Code(lambda frame: combine(first(frame), second(frame)))
    return Code(lambda frame: combine(*[run(frame) for run in runs]))


def _sequence(parts: Sequence[Code]) -> Code:
    """The list of the parts' values."""
    if any(part.awaits for part in parts):
        return _lifted(parts, lambda frame, values: values)
    runs = [part.run for part in parts]
    return Code(lambda frame: [run(frame) for run in runs])


# ------------------------------------------------------------------------------------------- templates


def compile_template(template: ast.Template, routines: Container[str]) -> Code:
    if isinstance(template, ast.Const):
        value = template.value
        if isinstance(value, list | dict):
            return Code(lambda frame: deep_copy(value))
        return Code(lambda frame: value)
    if isinstance(template, ast.ExprTemplate):
        return compile_expr(template.expr, routines)
    if isinstance(template, ast.ListTemplate):
        return _sequence([compile_template(item, routines) for item in template.items])
    if isinstance(template, ast.MapTemplate):
        keys = [key for key, _ in template.entries]
        values = [compile_template(value, routines) for _, value in template.entries]
        if any(value.awaits for value in values):
            return _combine([_sequence(values)], lambda items: dict(zip(keys, items, strict=True)))
        entries = [(key, value.run) for key, value in zip(keys, values, strict=True)]
        return Code(lambda frame: {key: run(frame) for key, run in entries})
    raise TypeError(f"unknown template {template!r}")


# ----------------------------------------------------------------------------------------- expressions


def compile_expr(expr: ast.Expr, routines: Container[str]) -> Code:
    if isinstance(expr, ast.Literal):
        value = expr.value
        return Code(lambda frame: value)
    if isinstance(expr, ast.Name):
        return Code(_name(expr.name, expr.name in routines or expr.name in BUILTINS))
    if isinstance(expr, ast.Member):
        return _member(expr, routines)
    if isinstance(expr, ast.Index):
        return _combine([compile_expr(expr.target, routines), compile_expr(expr.index, routines)], get_index)
    if isinstance(expr, ast.Binary):
        return _binary(expr, routines)
    if isinstance(expr, ast.Unary):
        return _combine([compile_expr(expr.operand, routines)], logical_not if expr.op == "not" else negate)
    if isinstance(expr, ast.ListLit):
        return _sequence([compile_expr(item, routines) for item in expr.items])
    if isinstance(expr, ast.MapLit):
        return _map_literal(expr, routines)
    if isinstance(expr, ast.Call):
        return _call(expr, routines)
    raise TypeError(f"unknown expression {expr!r}")


def _name(name: str, is_function: bool) -> Run:
    def load(frame: Frame) -> Any:
        scope: Scope | None = frame.scope
        while scope is not None:
            variables = scope.vars
            if name in variables:
                return variables[name]
            scope = scope.parent
        if is_function:
            return ast.FunctionRef(name)
        raise WorkflowError.tagged("KeyError", f"variable '{name}' not found")

    return load


def _member(expr: ast.Member, routines: Container[str]) -> Code:
    target = compile_expr(expr.target, routines)
    key = expr.name
    if target.awaits:  # ``f(x).key`` with ``f`` a subworkflow
        return _combine([target], lambda value: get_key(value, key))
    target_run = target.run

    def member(frame: Frame) -> Any:
        value = target_run(frame)
        if type(value) is dict and key in value:
            return value[key]
        return get_key(value, key)

    dotted = ast.dotted_name(expr)
    if dotted is None or (dotted not in CONSTANTS and dotted not in BUILTINS):
        return Code(member)
    return Code(_named_value(dotted, member))


def _named_value(dotted: str, member: Run) -> Run:
    """``http.default_retry`` or ``sys.now`` used as a value, unless ``http``/``sys`` is a variable."""
    root = dotted.split(".", 1)[0]
    if dotted in CONSTANTS:
        constant = CONSTANTS[dotted]
        return lambda frame: member(frame) if frame.scope.owner(root) is not None else deep_copy(constant)
    return lambda frame: member(frame) if frame.scope.owner(root) is not None else ast.FunctionRef(dotted)


def _binary(expr: ast.Binary, routines: Container[str]) -> Code:
    left = compile_expr(expr.left, routines)
    right = compile_expr(expr.right, routines)
    op = expr.op
    if op == "and" or op == "or":
        return _logical(op, left, right)
    return _combine([left, right], BINARY_OPERATORS[op])


def _logical(op: str, left: Code, right: Code) -> Code:
    """``and``/``or``: the right side is evaluated only when the left one does not decide."""
    shortcut = op == "or"  # the left value that decides the result on its own
    left_run, right_run = left.run, right.run
    if not (left.awaits or right.awaits):

        def logical(frame: Frame) -> Any:
            if check_boolean(op, left_run(frame)) is shortcut:
                return shortcut
            return check_boolean(op, right_run(frame))

        return Code(logical)

    async def lifted(frame: Frame) -> Any:
        first = left_run(frame)
        if check_boolean(op, await first if left.awaits else first) is shortcut:
            return shortcut
        second = right_run(frame)
        return check_boolean(op, await second if right.awaits else second)

    return Code(lifted, awaits=True)


def _map_literal(expr: ast.MapLit, routines: Container[str]) -> Code:
    parts: list[Code] = []
    for key, value in expr.entries:
        parts.append(_combine([compile_expr(key, routines)], string_key))
        parts.append(compile_expr(value, routines))
    return _combine([_sequence(parts)], lambda values: dict(zip(values[::2], values[1::2], strict=True)))


def _call(expr: ast.Call, routines: Container[str]) -> Code:
    name = expr.function
    args = [compile_expr(arg, routines) for arg in expr.args]
    if name in routines:
        return _lifted(args, lambda frame, values: frame.call_routine(name, values), awaits=True)
    connector = EXPRESSION_CONNECTORS.get(name)
    if connector is not None:
        return _lifted(
            args,
            lambda frame, values: frame.host.call_connector(name, dict(zip(connector, values, strict=False))),
            awaits=True,
        )
    builtin = BUILTINS.get(name)
    if builtin is None:  # refused at load; kept for programs built by hand

        def unknown(*values: Any) -> Any:
            raise WorkflowError.tagged("KeyError", f"function '{name}' not found")

        return _combine(args, unknown) if args else Code(lambda frame: unknown())
    fn = builtin.fn
    if builtin.is_async or any(arg.awaits for arg in args):
        return _lifted(
            args,
            lambda frame, values: fn(frame.host, *builtin.bind_positional(values)),
            awaits=builtin.is_async,
        )
    return Code(_builtin_call(builtin, [arg.run for arg in args]))


def _builtin_call(builtin: Builtin, runs: list[Run]) -> Run:
    """A call of a synchronous built-in, with the common arities spelled out (the hot path)."""
    fn = builtin.fn
    count = len(runs)
    if not len(builtin.required) <= count <= len(builtin.params):  # refused at load
        return lambda frame: fn(frame.host, *builtin.bind_positional([run(frame) for run in runs]))
    tail = tuple(builtin.defaults[p] for p in builtin.params[count:])
    if count == 0:
        return lambda frame: fn(frame.host, *tail)
    if count == 1:
        (only,) = runs
        if not tail:
            return lambda frame: fn(frame.host, only(frame))
        return lambda frame: fn(frame.host, only(frame), *tail)
    if count == 2 and not tail:
        first, second = runs
        return lambda frame: fn(frame.host, first(frame), second(frame))
    return lambda frame: fn(frame.host, *[run(frame) for run in runs], *tail)
