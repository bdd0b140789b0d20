"""Loads a workflow (YAML or JSON) into a ``Program``: every expression is parsed once, here, and the
checks the real service makes at deploy time are made, each failure naming the step, the line and the
column with a caret under the mistake.

Deploy-time checks (https://cloud.google.com/workflows/docs/reference/syntax and
https://cloud.google.com/workflows/quotas): unknown step keys; ``args``/``result`` without ``call`` and
``retry``/``except`` without ``try``; ``next`` to a missing step (or ``break``/``continue`` outside a
loop); duplicate step names in a routine; a parallel branch writing a parent variable it did not declare
``shared``; unknown functions, blocking functions inside expressions, unsupported connectors; subworkflow
call arguments; 50 assignments per step, 50 switch conditions, 2 to 10 branches, parallel nesting 2;
``main`` takes at most one parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from localcloud.workflows.engine.compiler import compile_path, compile_template, may_alias
from localcloud.workflows.engine.host import SUPPORTED_CONNECTORS
from localcloud.workflows.engine.stdlib import BUILTINS, CONSTANTS
from localcloud.workflows.lang import ast
from localcloud.workflows.lang.ast import Program
from localcloud.workflows.lang.errors import DeployError
from localcloud.workflows.lang.lexer import ExpressionSyntaxError
from localcloud.workflows.lang.parser import MAX_EXPRESSION_LENGTH, parse_expression

__all__ = ["SUPPORTED_CONNECTORS", "Program", "load_workflow"]

STEP_KEYS = frozenset(
    {
        "assign",
        "call",
        "args",
        "result",
        "next",
        "switch",
        "for",
        "parallel",
        "raise",
        "try",
        "retry",
        "except",
        "return",
        "steps",
    }
)
KIND_KEYS = ("try", "parallel", "for", "switch", "call", "assign", "steps", "return", "raise")
MAX_ASSIGNMENTS = 50
MAX_SWITCH_CONDITIONS = 50
MAX_BRANCHES = 10
MAX_PARALLEL_NESTING = 2
MAX_NESTING_DEPTH = 20
SPECIAL_NEXT = frozenset({"end", "break", "continue"})


class _YamlLoader(yaml.SafeLoader):
    """YAML 1.1 as PyYAML reads it, plus the YAML 1.2 floats without a dot or exponent sign (``1e3``)."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_workflow(
    source: str,
    *,
    filename: str = "workflow.yaml",
    connectors: frozenset[str] = SUPPORTED_CONNECTORS,
    compiled: bool = True,
) -> Program:
    """Parse and check a workflow definition. Raises ``DeployError`` for the first mistake found.

    ``compiled=False`` leaves every expression to the evaluator instead of compiling it to a closure (the
    slow reference path, for checking that both agree)."""
    return _Loader(source, filename, connectors, compiled).load()


@dataclass
class _Context:
    routine: str
    step: str | None = None
    in_loop: bool = False
    parallel_depth: int = 0
    depth: int = 0
    shared: frozenset[str] | None = None  # set inside a parallel branch
    parent_vars: frozenset[str] = frozenset()


@dataclass
class _RoutineInfo:
    params: tuple[ast.Param, ...]
    node: yaml.Node
    assigned: set[str] = field(default_factory=set)


class _Loader:
    def __init__(self, source: str, filename: str, connectors: frozenset[str], compiled: bool) -> None:
        self.source = source
        self.compiled = compiled
        self.lines = source.splitlines()
        self.filename = filename
        self.connectors = connectors
        self.routines: dict[str, _RoutineInfo] = {}
        self.constructor = yaml.constructor.SafeConstructor()

    # -- errors

    def error(
        self, message: str, node: yaml.Node | None, step: str | None = None, extra_column: int = 0
    ) -> DeployError:
        if node is None:
            return DeployError(message, step=step)
        line = node.start_mark.line + 1
        column = node.start_mark.column + 1 + extra_column
        source_line = self.lines[line - 1] if 0 < line <= len(self.lines) else None
        return DeployError(message, step=step, line=line, column=column, source_line=source_line)

    # -- values

    def plain(self, node: yaml.Node) -> Any:
        return self.constructor.construct_object(node, deep=True)

    def text(self, node: yaml.Node, what: str, step: str | None) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:str":
            raise self.error(f"{what} must be a string", node, step)
        return str(node.value)

    def mapping(self, node: yaml.Node, what: str, step: str | None) -> list[tuple[str, yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.error(f"{what} must be a map", node, step)
        entries = []
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = self.plain(key_node)
            if not isinstance(key, str):
                key = str(key).lower() if isinstance(key, bool) else str(key)
            if key in seen:
                raise self.error(f"duplicate key '{key}'", key_node, step)
            seen.add(key)
            entries.append((key, key_node, value_node))
        return entries

    def sequence(self, node: yaml.Node, what: str, step: str | None) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(f"{what} must be a list", node, step)
        return list(node.value)

    def single(self, node: yaml.Node, what: str, step: str | None) -> tuple[str, yaml.Node, yaml.Node]:
        entries = self.mapping(node, what, step)
        if len(entries) != 1:
            raise self.error(f"{what} must be a map with exactly one key", node, step)
        return entries[0]

    def expression(self, text: str, node: yaml.Node, ctx: _Context) -> ast.Expr:
        inner = text[2:-1]
        quote = 1 if getattr(node, "style", None) in ("'", '"') else 0
        if len(text) > MAX_EXPRESSION_LENGTH:
            raise self.error(f"expression longer than {MAX_EXPRESSION_LENGTH} characters", node, ctx.step)
        try:
            expr = parse_expression(inner)
        except ExpressionSyntaxError as error:
            raise self.error(
                f"invalid expression: {error.message}", node, ctx.step, extra_column=quote + 2 + error.offset
            ) from None
        for call in _calls(expr):
            self.check_expression_call(call, node, ctx, quote + 2)
        return expr

    def check_expression_call(self, call: ast.Call, node: yaml.Node, ctx: _Context, shift: int) -> None:
        name = call.function
        if name in self.routines:
            self.check_routine_arity(name, len(call.args), node, ctx, shift + call.offset)
            return
        builtin = BUILTINS.get(name)
        if builtin is None:
            raise self.error(f"unknown function '{name}'", node, ctx.step, extra_column=shift + call.offset)
        if builtin.blocking:
            raise self.error(
                f"'{name}' is a blocking call and cannot be used in an expression; use a call step",
                node,
                ctx.step,
                extra_column=shift + call.offset,
            )
        if not len(builtin.required) <= len(call.args) <= len(builtin.params):
            raise self.error(
                f"'{name}' takes {builtin._arity()} arguments, {len(call.args)} given",
                node,
                ctx.step,
                extra_column=shift + call.offset,
            )

    def check_routine_arity(self, name: str, count: int, node: yaml.Node, ctx: _Context, column: int) -> None:
        params = self.routines[name].params
        required = sum(1 for p in params if not p.has_default)
        if not required <= count <= len(params):
            raise self.error(
                f"subworkflow '{name}' takes {required} to {len(params)} arguments, {count} given",
                node,
                ctx.step,
                extra_column=column,
            )

    def template(self, node: yaml.Node, ctx: _Context) -> ast.Template:
        template = self._template(node, ctx)
        if not self.compiled:
            return template
        return replace(
            template,
            fn=compile_template(template, self.routines),
            aliases=may_alias(template),
        )

    def _template(self, node: yaml.Node, ctx: _Context) -> ast.Template:
        if isinstance(node, yaml.ScalarNode):
            value = self.plain(node)
            if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
                return ast.ExprTemplate(self.expression(value, node, ctx), value)
            if not isinstance(value, str | int | float | bool | type(None)):
                value = str(value)  # timestamps and other YAML-only scalars stay text
            return ast.Const(value)
        if isinstance(node, yaml.SequenceNode):
            items = tuple(self.template(item, ctx) for item in node.value)
            if all(isinstance(i, ast.Const) for i in items):
                return ast.Const([i.value for i in items])  # type: ignore[attr-defined]
            return ast.ListTemplate(items)
        if isinstance(node, yaml.MappingNode):
            entries = tuple(
                (key, self.template(value, ctx)) for key, _, value in self.mapping(node, "value", ctx.step)
            )
            if all(isinstance(v, ast.Const) for _, v in entries):
                return ast.Const({k: v.value for k, v in entries})  # type: ignore[attr-defined]
            return ast.MapTemplate(entries)
        raise self.error("unsupported YAML value", node, ctx.step)

    # -- program

    def load(self) -> Program:
        try:
            root = yaml.compose(self.source, Loader=_YamlLoader)
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark
            line = mark.line + 1 if mark else None
            column = mark.column + 1 if mark else None
            source_line = self.lines[line - 1] if line and 0 < line <= len(self.lines) else None
            raise DeployError(
                f"invalid YAML: {error.problem}", line=line, column=column, source_line=source_line
            ) from None
        except yaml.YAMLError as error:
            raise DeployError(f"invalid YAML: {error}") from None
        if root is None:
            raise DeployError("the workflow is empty")
        routine_nodes: list[tuple[str, yaml.Node, yaml.Node]]
        if isinstance(root, yaml.SequenceNode):
            routine_nodes = [("main", root, root)]
            self.routines["main"] = _RoutineInfo((), root)
        else:
            routine_nodes = []
            for name, key_node, value_node in self.mapping(root, "the workflow", None):
                entries = {k: (kn, v) for k, kn, v in self.mapping(value_node, f"routine '{name}'", None)}
                for key in entries:
                    if key not in ("params", "steps"):
                        raise self.error(f"unknown key '{key}' in routine '{name}'", entries[key][0])
                if "steps" not in entries:
                    raise self.error(f"routine '{name}' has no steps", key_node)
                params = self.params(entries["params"][1], name) if "params" in entries else ()
                if name == "main" and len(params) > 1:
                    raise self.error(
                        "main takes at most one parameter (the execution argument)", entries["params"][1]
                    )
                self.routines[name] = _RoutineInfo(params, entries["steps"][1])
                routine_nodes.append((name, key_node, entries["steps"][1]))
            if "main" not in self.routines:
                raise self.error("the workflow has no 'main' routine", root)
        routines: dict[str, ast.Routine] = {}
        for name, key_node, steps_node in routine_nodes:
            info = self.routines[name]
            ctx = _Context(routine=name, parent_vars=frozenset(p.name for p in info.params))
            steps = self.steps(steps_node, ctx)
            self.check_jumps(steps, [], name, in_loop=False)
            self.check_unique(steps, name)
            position = ast.Position(key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            routines[name] = ast.Routine(name, info.params, steps, position)
        return Program(routines, self.source, self.filename)

    def params(self, node: yaml.Node, routine: str) -> tuple[ast.Param, ...]:
        params: list[ast.Param] = []
        for item in self.sequence(node, f"params of '{routine}'", None):
            if isinstance(item, yaml.MappingNode):
                name, _, default = self.single(item, "a parameter with a default", None)
                params.append(ast.Param(name, self.plain(default), True))
            else:
                params.append(ast.Param(self.text(item, "a parameter name", None), None, False))
        return tuple(params)

    def steps(self, node: yaml.Node, ctx: _Context) -> tuple[ast.Step, ...]:
        if ctx.depth > MAX_NESTING_DEPTH:
            raise self.error("steps are nested too deeply", node, ctx.step)
        steps = []
        for item in self.sequence(node, "steps", ctx.step):
            name, key_node, body = self.single(item, "a step", ctx.step)
            inner = _Context(
                ctx.routine, name, ctx.in_loop, ctx.parallel_depth, ctx.depth + 1, ctx.shared, ctx.parent_vars
            )
            steps.append(self.step(name, key_node, body, inner))
        return tuple(steps)

    def step(self, name: str, key_node: yaml.Node, body: yaml.Node, ctx: _Context) -> ast.Step:
        position = ast.Position(key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        entries = {k: (kn, v) for k, kn, v in self.mapping(body, f"step '{name}'", name)}
        for key, (key_node_, _) in entries.items():
            if key not in STEP_KEYS:
                raise self.error(f"unknown step key '{key}'", key_node_, name)
        kinds = [k for k in KIND_KEYS if k in entries]
        if len(kinds) > 1:
            raise self.error(
                f"a step cannot have both '{kinds[0]}' and '{kinds[1]}'", entries[kinds[1]][0], name
            )
        for dependent, required in (
            ("args", "call"),
            ("result", "call"),
            ("retry", "try"),
            ("except", "try"),
        ):
            if dependent in entries and required not in entries:
                raise self.error(f"'{dependent}' needs '{required}'", entries[dependent][0], name)
        next_target = self.text(entries["next"][1], "next", name) if "next" in entries else None
        kind = kinds[0] if kinds else None
        node = entries[kind][1] if kind else body
        if kind is None:
            if next_target is None:
                raise self.error("the step does nothing", key_node, name)
            return ast.NextStep(name, position, next_target)
        if kind == "assign":
            return ast.AssignStep(name, position, next_target, self.assignments(node, ctx))
        if kind == "call":
            return self.call_step(name, position, next_target, entries, ctx)
        if kind == "return":
            return ast.ReturnStep(name, position, next_target, self.template(node, ctx))
        if kind == "raise":
            return ast.RaiseStep(name, position, next_target, self.template(node, ctx))
        if kind == "steps":
            return ast.StepsStep(name, position, next_target, self.steps(node, ctx))
        if kind == "switch":
            return self.switch_step(name, position, next_target, node, ctx)
        if kind == "for":
            return self.for_step(name, position, next_target, node, ctx)
        if kind == "parallel":
            return self.parallel_step(name, position, next_target, node, ctx)
        return self.try_step(name, position, next_target, entries, ctx)

    def note_write(self, variable: str, node: yaml.Node, ctx: _Context) -> None:
        if ctx.shared is not None and variable in ctx.parent_vars and variable not in ctx.shared:
            raise self.error(
                f"variable '{variable}' is not declared 'shared' and cannot be written inside a parallel step",
                node,
                ctx.step,
            )
        if ctx.shared is None:
            self.routines[ctx.routine].assigned.add(variable)
            ctx.parent_vars = ctx.parent_vars | {variable}

    def assignments(self, node: yaml.Node, ctx: _Context) -> tuple[ast.Assignment, ...]:
        items = self.sequence(node, "assign", ctx.step)
        if len(items) > MAX_ASSIGNMENTS:
            raise self.error(f"at most {MAX_ASSIGNMENTS} assignments per step", node, ctx.step)
        result = []
        for item in items:
            key, key_node, value = self.single(item, "an assignment", ctx.step)
            target, path = self.target(key, key_node, ctx)
            template = self.template(value, ctx)
            self.note_write(target, key_node, ctx)
            path_fn = compile_path(path, self.routines) if self.compiled else None
            result.append(ast.Assignment(target, path, template, path_fn))
        return tuple(result)

    def target(self, text: str, node: yaml.Node, ctx: _Context) -> tuple[str, tuple[ast.Expr, ...]]:
        source = text[2:-1] if text.startswith("${") and text.endswith("}") else text
        try:
            expr = parse_expression(source)
        except ExpressionSyntaxError as error:
            raise self.error(
                f"invalid assignment target: {error.message}", node, ctx.step, error.offset
            ) from None
        path: list[ast.Expr] = []
        while not isinstance(expr, ast.Name):
            if isinstance(expr, ast.Member):
                path.append(ast.Literal(expr.offset, expr.name))
                expr = expr.target
            elif isinstance(expr, ast.Index):
                for call in _calls(expr.index):
                    self.check_expression_call(call, node, ctx, 0)
                path.append(expr.index)
                expr = expr.target
            else:
                raise self.error(f"invalid assignment target '{text}'", node, ctx.step)
        return expr.name, tuple(reversed(path))

    def call_step(
        self,
        name: str,
        position: ast.Position,
        next_target: str | None,
        entries: dict[str, tuple[yaml.Node, yaml.Node]],
        ctx: _Context,
    ) -> ast.CallStep:
        function_node = entries["call"][1]
        function = self.text(function_node, "call", name)
        args: list[tuple[str, ast.Template]] = []
        if "args" in entries:
            for key, _, value in self.mapping(entries["args"][1], "args", name):
                args.append((key, self.template(value, ctx)))
        arg_names = [k for k, _ in args]
        if function in self.routines:
            kind = "subworkflow"
            params = self.routines[function].params
            known = {p.name for p in params}
            for arg in arg_names:
                if arg not in known:
                    raise self.error(
                        f"subworkflow '{function}' has no parameter '{arg}'", entries["args"][1], name
                    )
            for param in params:
                if not param.has_default and param.name not in arg_names:
                    raise self.error(
                        f"missing argument '{param.name}' for subworkflow '{function}'", function_node, name
                    )
        elif function.startswith("googleapis."):
            kind = "connector"
            if function not in self.connectors:
                raise self.error(
                    f"connector '{function}' is not supported here (supported: {', '.join(sorted(self.connectors)) or 'none'})",
                    function_node,
                    name,
                )
        elif function in BUILTINS:
            kind = "builtin"
            builtin = BUILTINS[function]
            for arg in arg_names:
                if arg not in builtin.params:
                    raise self.error(f"'{function}' has no argument '{arg}'", entries["args"][1], name)
            for required in builtin.required:
                if required not in arg_names:
                    raise self.error(f"'{function}' needs the argument '{required}'", function_node, name)
        else:
            raise self.error(f"unknown function '{function}'", function_node, name)
        result = None
        if "result" in entries:
            result = self.text(entries["result"][1], "result", name)
            self.note_write(result, entries["result"][1], ctx)
        return ast.CallStep(name, position, next_target, function, tuple(args), result, kind)

    def switch_step(
        self, name: str, position: ast.Position, next_target: str | None, node: yaml.Node, ctx: _Context
    ) -> ast.SwitchStep:
        items = self.sequence(node, "switch", name)
        if len(items) > MAX_SWITCH_CONDITIONS:
            raise self.error(f"at most {MAX_SWITCH_CONDITIONS} switch conditions", node, name)
        if not items:
            raise self.error("switch needs at least one condition", node, name)
        cases = []
        for item in items:
            entries = {k: (kn, v) for k, kn, v in self.mapping(item, "a switch condition", name)}
            if "condition" not in entries:
                raise self.error("a switch entry needs a 'condition'", item, name)
            for key, (key_node, _) in entries.items():
                if key != "condition" and key not in STEP_KEYS:
                    raise self.error(f"unknown key '{key}' in a switch condition", key_node, name)
            condition = self.template(entries["condition"][1], ctx)
            case_next = self.text(entries["next"][1], "next", name) if "next" in entries else None
            rest = [k for k in entries if k not in ("condition", "next")]
            body: ast.Step | None = None
            case_position = ast.Position(item.start_mark.line + 1, item.start_mark.column + 1)
            if rest:
                inner = yaml.MappingNode(
                    "tag:yaml.org,2002:map",
                    [(kn, v) for k, (kn, v) in entries.items() if k not in ("condition", "next")],
                    item.start_mark,
                    item.end_mark,
                )
                body = self.step(name, item, inner, ctx)
            cases.append(ast.SwitchCase(condition, case_position, case_next, body))
        return ast.SwitchStep(name, position, next_target, tuple(cases))

    def for_step(
        self, name: str, position: ast.Position, next_target: str | None, node: yaml.Node, ctx: _Context
    ) -> ast.ForStep:
        entries = {k: (kn, v) for k, kn, v in self.mapping(node, "for", name)}
        for key, (key_node, _) in entries.items():
            if key not in ("value", "index", "in", "range", "steps"):
                raise self.error(f"unknown key '{key}' in for", key_node, name)
        if "value" not in entries and "index" not in entries:
            raise self.error("for needs 'value'", node, name)
        if ("in" in entries) == ("range" in entries):
            raise self.error("for needs exactly one of 'in' and 'range'", node, name)
        if "steps" not in entries:
            raise self.error("for needs 'steps'", node, name)
        value = self.text(entries["value"][1], "value", name) if "value" in entries else ""
        index = self.text(entries["index"][1], "index", name) if "index" in entries else None
        items = self.template(entries["in"][1], ctx) if "in" in entries else None
        range_ = self.template(entries["range"][1], ctx) if "range" in entries else None
        inner = _Context(ctx.routine, name, True, ctx.parallel_depth, ctx.depth, ctx.shared, ctx.parent_vars)
        steps = self.steps(entries["steps"][1], inner)
        return ast.ForStep(name, position, next_target, value, index, items, range_, steps)

    def parallel_step(
        self, name: str, position: ast.Position, next_target: str | None, node: yaml.Node, ctx: _Context
    ) -> ast.ParallelStep:
        entries = {k: (kn, v) for k, kn, v in self.mapping(node, "parallel", name)}
        for key, (key_node, _) in entries.items():
            if key not in ("shared", "concurrency_limit", "exception_policy", "branches", "for"):
                raise self.error(f"unknown key '{key}' in parallel", key_node, name)
        if ctx.parallel_depth >= MAX_PARALLEL_NESTING:
            raise self.error(f"parallel steps may be nested at most {MAX_PARALLEL_NESTING} deep", node, name)
        if ("branches" in entries) == ("for" in entries):
            raise self.error("parallel needs exactly one of 'branches' and 'for'", node, name)
        shared: tuple[str, ...] = ()
        if "shared" in entries:
            shared = tuple(
                self.text(v, "a shared variable", name)
                for v in self.sequence(entries["shared"][1], "shared", name)
            )
            for variable, variable_node in zip(shared, entries["shared"][1].value, strict=True):
                if variable not in ctx.parent_vars and variable not in self.routines[ctx.routine].assigned:
                    raise self.error(
                        f"shared variable '{variable}' must be assigned before the parallel step",
                        variable_node,
                        name,
                    )
        policy = "continueAll"
        if "exception_policy" in entries:
            policy = self.text(entries["exception_policy"][1], "exception_policy", name)
            if policy != "continueAll":
                raise self.error(
                    "exception_policy must be 'continueAll'", entries["exception_policy"][1], name
                )
        limit = (
            self.template(entries["concurrency_limit"][1], ctx) if "concurrency_limit" in entries else None
        )
        visible = (
            ctx.parent_vars | self.routines[ctx.routine].assigned if ctx.shared is None else ctx.parent_vars
        )
        allowed = frozenset(shared) | (ctx.shared or frozenset())
        inner = _Context(ctx.routine, name, False, ctx.parallel_depth + 1, ctx.depth, allowed, visible)
        if "branches" in entries:
            branch_nodes = self.sequence(entries["branches"][1], "branches", name)
            if not 2 <= len(branch_nodes) <= MAX_BRANCHES:
                raise self.error(f"parallel needs 2 to {MAX_BRANCHES} branches", entries["branches"][1], name)
            branches = []
            for branch_node in branch_nodes:
                branch_name, key_node, branch_body = self.single(branch_node, "a branch", name)
                branch_entries = {k: v for k, _, v in self.mapping(branch_body, "a branch", branch_name)}
                if set(branch_entries) != {"steps"}:
                    raise self.error("a branch must have exactly 'steps'", branch_body, branch_name)
                branch_ctx = _Context(
                    ctx.routine, branch_name, False, inner.parallel_depth, ctx.depth + 1, allowed, visible
                )
                steps = self.steps(branch_entries["steps"], branch_ctx)
                self.check_jumps(steps, [], ctx.routine, in_loop=False)
                branches.append(
                    ast.Branch(
                        branch_name,
                        ast.Position(key_node.start_mark.line + 1, key_node.start_mark.column + 1),
                        steps,
                    )
                )
            return ast.ParallelStep(name, position, next_target, shared, limit, policy, tuple(branches), None)
        loop = self.for_step(name, position, None, entries["for"][1], inner)
        return ast.ParallelStep(name, position, next_target, shared, limit, policy, None, loop)

    def try_step(
        self,
        name: str,
        position: ast.Position,
        next_target: str | None,
        entries: dict[str, tuple[yaml.Node, yaml.Node]],
        ctx: _Context,
    ) -> ast.TryStep:
        try_node = entries["try"][1]
        try_entries = {k: v for k, _, v in self.mapping(try_node, "try", name)}
        if set(try_entries) == {"steps"}:
            body = self.steps(try_entries["steps"], ctx)
        else:
            body = (self.step(name, entries["try"][0], try_node, ctx),)
        retry = None
        if "retry" in entries:
            retry = self.template(entries["retry"][1], ctx)
            if isinstance(retry, ast.MapTemplate | ast.Const):
                self.check_retry_map(entries["retry"][1], name)
        except_as = None
        except_steps = None
        if "except" in entries:
            except_entries = {k: (kn, v) for k, kn, v in self.mapping(entries["except"][1], "except", name)}
            for key, (key_node, _) in except_entries.items():
                if key not in ("as", "steps"):
                    raise self.error(f"unknown key '{key}' in except", key_node, name)
            if "steps" not in except_entries:
                raise self.error("except needs 'steps'", entries["except"][1], name)
            if "as" in except_entries:
                except_as = self.text(except_entries["as"][1], "as", name)
                self.note_write(except_as, except_entries["as"][1], ctx)
            except_steps = self.steps(except_entries["steps"][1], ctx)
        return ast.TryStep(name, position, next_target, body, retry, except_as, except_steps)

    def check_retry_map(self, node: yaml.Node, step: str) -> None:
        entries = {k: (kn, v) for k, kn, v in self.mapping(node, "retry", step)}
        for key, (key_node, _) in entries.items():
            if key not in ("predicate", "max_retries", "backoff"):
                raise self.error(f"unknown key '{key}' in retry", key_node, step)
        if "predicate" in entries:
            value = self.plain(entries["predicate"][1])
            if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
                target = value[2:-1].strip()
                if target not in self.routines and target not in BUILTINS and "(" not in target:
                    raise self.error(f"unknown retry predicate '{target}'", entries["predicate"][1], step)
        if "backoff" in entries and isinstance(entries["backoff"][1], yaml.MappingNode):
            for key, key_node, _ in self.mapping(entries["backoff"][1], "backoff", step):
                if key not in ("initial_delay", "max_delay", "multiplier"):
                    raise self.error(f"unknown key '{key}' in backoff", key_node, step)

    # -- jumps

    def check_jumps(
        self, steps: tuple[ast.Step, ...], outer: list[set[str]], routine: str, *, in_loop: bool
    ) -> None:
        names = {s.name for s in steps}
        scopes = [names, *outer]
        for step in steps:
            targets = [step.next]
            if isinstance(step, ast.SwitchStep):
                targets += [case.next for case in step.cases]
            for target in targets:
                if target is None or target == "end":
                    continue
                if target in ("break", "continue"):
                    if not in_loop:
                        raise DeployError(
                            f"'next: {target}' outside a for loop",
                            step=step.name,
                            line=step.position.line,
                            column=step.position.column,
                            source_line=self._line(step.position.line),
                        )
                    continue
                if not any(target in scope for scope in scopes):
                    raise DeployError(
                        f"'next' names a missing step '{target}'",
                        step=step.name,
                        line=step.position.line,
                        column=step.position.column,
                        source_line=self._line(step.position.line),
                    )
            for child, child_loop in _children(step):
                self.check_jumps(
                    child,
                    scopes if not child_loop else [],
                    routine,
                    in_loop=child_loop or (in_loop and not isinstance(step, ast.ParallelStep)),
                )

    def check_unique(self, steps: tuple[ast.Step, ...], routine: str) -> None:
        seen: dict[str, ast.Step] = {}
        for step in _walk(steps):
            if (
                step.name in seen
                and seen[step.name] is not step
                and seen[step.name].position != step.position
            ):
                raise DeployError(
                    f"duplicate step name '{step.name}' in routine '{routine}'",
                    step=step.name,
                    line=step.position.line,
                    column=step.position.column,
                    source_line=self._line(step.position.line),
                )
            seen[step.name] = step

    def _line(self, line: int) -> str | None:
        return self.lines[line - 1] if 0 < line <= len(self.lines) else None


def _children(step: ast.Step) -> Iterator[tuple[tuple[ast.Step, ...], bool]]:
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


def _walk(steps: tuple[ast.Step, ...]) -> Iterator[ast.Step]:
    for step in steps:
        yield step
        for child, _ in _children(step):
            if len(child) == 1 and child[0].name == step.name:  # try/switch bodies reuse the step's name
                for grandchild, _ in _children(child[0]):
                    yield from _walk(grandchild)
                continue
            yield from _walk(child)


def _calls(expr: ast.Expr) -> Iterator[ast.Call]:
    if isinstance(expr, ast.Call):
        yield expr
        for arg in expr.args:
            yield from _calls(arg)
    elif isinstance(expr, ast.Member):
        yield from _calls(expr.target)
    elif isinstance(expr, ast.Index):
        yield from _calls(expr.target)
        yield from _calls(expr.index)
    elif isinstance(expr, ast.Unary):
        yield from _calls(expr.operand)
    elif isinstance(expr, ast.Binary):
        yield from _calls(expr.left)
        yield from _calls(expr.right)
    elif isinstance(expr, ast.ListLit):
        for item in expr.items:
            yield from _calls(item)
    elif isinstance(expr, ast.MapLit):
        for key, value in expr.entries:
            yield from _calls(key)
            yield from _calls(value)


_ = CONSTANTS
