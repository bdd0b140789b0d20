"""Turns expression ASTs and value templates into plain Python closures of the frame, once, at load time.

A compiled template is a synchronous function ``fn(frame) -> value`` with exactly the semantics of
``evaluator.evaluate_template`` (same results, same errors, same order of evaluation), without a coroutine
and an ``isinstance`` dispatch per node. Only a template that calls a subworkflow cannot be compiled (the
call must ``await``); it stays with the evaluator. Built-ins usable in expressions are never ``async``: the
loader refuses blocking functions there.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from typing import Any

from localcloud.workflows.engine.evaluator import (
    BINARY_OPERATORS,
    Frame,
    Scope,
    apply_binary,
    copy_value,
    get_index,
    get_key,
    negate,
)
from localcloud.workflows.engine.stdlib import BUILTINS, CONSTANTS
from localcloud.workflows.lang import ast
from localcloud.workflows.lang.errors import WorkflowError
from localcloud.workflows.lang.values import type_error, type_name

Compiled = Callable[[Frame], Any]

__all__ = ["RETURNS_ARGUMENT", "Compiled", "compile_expr", "compile_template", "may_alias"]


def compile_template(template: ast.Template, routines: Container[str]) -> Compiled | None:
    """``None`` when the template calls one of ``routines`` (a subworkflow) anywhere."""
    if isinstance(template, ast.Const):
        value = template.value
        if isinstance(value, list | dict):
            return lambda frame: copy_value(value)
        return lambda frame: value
    if isinstance(template, ast.ExprTemplate):
        return compile_expr(template.expr, routines)
    if isinstance(template, ast.ListTemplate):
        return _list_of([compile_template(item, routines) for item in template.items])
    if isinstance(template, ast.MapTemplate):
        entries = [(key, compile_template(value, routines)) for key, value in template.entries]
        if not _all_compiled([fn for _, fn in entries]):
            return None
        compiled_entries: list[tuple[str, Compiled]] = entries  # type: ignore[assignment]
        return lambda frame: {key: fn(frame) for key, fn in compiled_entries}
    return None


def compile_path(path: tuple[ast.Expr, ...], routines: Container[str]) -> Callable[[Frame], list[Any]] | None:
    """The keys of an assignment target such as ``a.b[i]``, evaluated left to right."""
    parts = [compile_expr(part, routines) for part in path]
    if not _all_compiled(parts):
        return None
    compiled_parts: list[Compiled] = parts  # type: ignore[assignment]
    return lambda frame: [part(frame) for part in compiled_parts]


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


def _list_of(items: list[Compiled | None]) -> Compiled | None:
    """A list built from compiled items, or None when one of them could not be compiled."""
    if not _all_compiled(items):
        return None
    compiled_items: list[Compiled] = items  # type: ignore[assignment]
    return lambda frame: [item(frame) for item in compiled_items]


def _all_compiled(fns: list[Compiled | None]) -> bool:
    return all(fn is not None for fn in fns)


def compile_expr(expr: ast.Expr, routines: Container[str]) -> Compiled | None:
    if isinstance(expr, ast.Literal):
        value = expr.value
        return lambda frame: value
    if isinstance(expr, ast.Name):
        return _name(expr.name, expr.name in routines or expr.name in BUILTINS)
    if isinstance(expr, ast.Member):
        return _member(expr, routines)
    if isinstance(expr, ast.Index):
        target = compile_expr(expr.target, routines)
        index = compile_expr(expr.index, routines)
        if target is None or index is None:
            return None
        return lambda frame: get_index(target(frame), index(frame))
    if isinstance(expr, ast.Binary):
        return _binary(expr, routines)
    if isinstance(expr, ast.Unary):
        operand = compile_expr(expr.operand, routines)
        if operand is None:
            return None
        if expr.op == "not":
            return lambda frame: _not(operand(frame))
        return lambda frame: negate(operand(frame))
    if isinstance(expr, ast.ListLit):
        return _list_of([compile_expr(item, routines) for item in expr.items])
    if isinstance(expr, ast.MapLit):
        return _map_literal(expr, routines)
    if isinstance(expr, ast.Call):
        return _call(expr, routines)
    return None


def _name(name: str, is_function: bool) -> Compiled:
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


def _defined(frame: Frame, name: str) -> bool:
    scope: Scope | None = frame.scope
    while scope is not None:
        if name in scope.vars:
            return True
        scope = scope.parent
    return False


def _member(expr: ast.Member, routines: Container[str]) -> Compiled | None:
    target = compile_expr(expr.target, routines)
    if target is None:
        return None
    key = expr.name

    def member(frame: Frame) -> Any:
        value = target(frame)
        if type(value) is dict and key in value:
            return value[key]
        return get_key(value, key)

    dotted = ast.dotted_name(expr)
    if dotted is None or (dotted not in CONSTANTS and dotted not in BUILTINS):
        return member
    # ``http.default_retry`` or ``sys.now`` used as a value, unless ``http``/``sys`` is a variable
    root = dotted.split(".", 1)[0]
    if dotted in CONSTANTS:
        constant = CONSTANTS[dotted]

        def named(frame: Frame) -> Any:
            return member(frame) if _defined(frame, root) else copy_value(constant)

        return named
    function_name = dotted

    def function(frame: Frame) -> Any:
        return member(frame) if _defined(frame, root) else ast.FunctionRef(function_name)

    return function


def _binary(expr: ast.Binary, routines: Container[str]) -> Compiled | None:
    left = compile_expr(expr.left, routines)
    right = compile_expr(expr.right, routines)
    if left is None or right is None:
        return None
    op = expr.op
    if op == "and" or op == "or":
        shortcut = op == "or"  # the left value that decides the result on its own

        def logical(frame: Frame) -> Any:
            first = left(frame)
            if not isinstance(first, bool):
                raise type_error(f"'{op}' needs booleans, got {type_name(first)}")
            if first is shortcut:
                return first
            second = right(frame)
            if not isinstance(second, bool):
                raise type_error(f"'{op}' needs booleans, got {type_name(second)}")
            return second

        return logical
    operator = BINARY_OPERATORS.get(op)
    if operator is None:
        return lambda frame: apply_binary(op, left(frame), right(frame))
    bound = operator

    def binary(frame: Frame) -> Any:
        first = left(frame)
        return bound(first, right(frame))

    return binary


def _not(operand: Any) -> bool:
    if not isinstance(operand, bool):
        raise type_error(f"'not' needs a boolean, got {type_name(operand)}")
    return not operand


def _map_literal(expr: ast.MapLit, routines: Container[str]) -> Compiled | None:
    entries = [(compile_expr(k, routines), compile_expr(v, routines)) for k, v in expr.entries]
    if not all(k is not None and v is not None for k, v in entries):
        return None
    compiled_entries: list[tuple[Compiled, Compiled]] = entries  # type: ignore[assignment]

    def build(frame: Frame) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_fn, value_fn in compiled_entries:
            key = key_fn(frame)
            if not isinstance(key, str):
                raise type_error(f"map keys must be strings, got {type_name(key)}")
            result[key] = value_fn(frame)
        return result

    return build


def _call(expr: ast.Call, routines: Container[str]) -> Compiled | None:
    name = expr.function
    if name in routines:
        return None
    args = [compile_expr(arg, routines) for arg in expr.args]
    if not _all_compiled(args):
        return None
    compiled_args: list[Compiled] = args  # type: ignore[assignment]
    builtin = BUILTINS.get(name)
    if builtin is None:

        def unknown(frame: Frame) -> Any:
            for arg in compiled_args:
                arg(frame)
            raise WorkflowError.tagged("KeyError", f"function '{name}' not found")

        return unknown
    if builtin.is_async:
        return None
    fn = builtin.fn
    count = len(compiled_args)
    if not len(builtin.required) <= count <= len(builtin.params):

        def misfit(frame: Frame) -> Any:
            return fn(frame.host, *builtin.bind_positional([arg(frame) for arg in compiled_args]))

        return misfit
    tail = tuple(builtin.defaults[p] for p in builtin.params[count:])
    if count == 0:
        return lambda frame: fn(frame.host, *tail)
    if count == 1:
        (only,) = compiled_args
        if not tail:
            return lambda frame: fn(frame.host, only(frame))
        return lambda frame: fn(frame.host, only(frame), *tail)
    if count == 2 and not tail:
        first, second = compiled_args
        return lambda frame: fn(frame.host, first(frame), second(frame))
    return lambda frame: fn(frame.host, *[arg(frame) for arg in compiled_args], *tail)
