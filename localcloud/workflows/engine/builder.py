"""Builds the AST of a workflow from its YAML node tree: every expression is parsed once, here.

The builder enforces the grammar, the shape a definition must have to be a workflow at all: known step
keys, one kind per step, ``args``/``result`` only with ``call`` and ``retry``/``except`` only with
``try``, the keys of ``for``, ``parallel``, ``switch``, ``except``, ``retry`` and ``backoff``, value
types, expression syntax and length, and the quotas on the size of the text (50 assignments per step,
50 switch conditions, 2 to 10 branches, parallel nesting 2, step nesting, ``main`` with at most one
parameter; https://cloud.google.com/workflows/quotas). What needs the whole program (names, functions,
jumps, shared variables) is checked afterwards by ``checks.py``, over the finished AST. Each failure
names the step, the line and the column with a caret under the mistake. Nodes keep the positions the
checks point at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from localcloud.workflows.engine.host import is_connector
from localcloud.workflows.lang import ast
from localcloud.workflows.lang.errors import DeployError
from localcloud.workflows.lang.lexer import ExpressionSyntaxError
from localcloud.workflows.lang.parser import MAX_EXPRESSION_LENGTH, parse_expression

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

Entries = dict[str, tuple[yaml.Node, yaml.Node]]  # key -> (key node, value node)


@dataclass(frozen=True)
class _Context:
    routine: str
    step: str | None = None
    parallel_depth: int = 0
    depth: int = 0


def position(node: yaml.Node) -> ast.Position:
    return ast.Position(node.start_mark.line + 1, node.start_mark.column + 1)


class Builder:
    """``build(root)`` turns the composed YAML of one workflow into a ``Program``."""

    def __init__(self, source: str, filename: str) -> None:
        self.source = source
        self.lines = source.splitlines()
        self.filename = filename
        self.routines: dict[str, tuple[ast.Param, ...]] = {}
        self.constructor = yaml.constructor.SafeConstructor()

    # -- errors and YAML values

    def error(
        self, message: str, node: yaml.Node | None, step: str | None = None, extra_column: int = 0
    ) -> DeployError:
        if node is None:
            return DeployError(message, step=step)
        line = node.start_mark.line + 1
        column = node.start_mark.column + 1 + extra_column
        source_line = self.lines[line - 1] if 0 < line <= len(self.lines) else None
        return DeployError(message, step=step, line=line, column=column, source_line=source_line)

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

    def entries(self, node: yaml.Node, what: str, step: str | None, allowed: frozenset[str]) -> Entries:
        """A map as ``{key: (key node, value node)}``, refusing keys outside ``allowed``."""
        entries = {key: (key_node, value) for key, key_node, value in self.mapping(node, what, step)}
        self.refuse_unknown(entries, what, step, allowed)
        return entries

    def refuse_unknown(self, entries: Entries, what: str, step: str | None, allowed: frozenset[str]) -> None:
        for key, (key_node, _) in entries.items():
            if key not in allowed:
                raise self.error(f"unknown key '{key}' in {what}", key_node, step)

    def sequence(self, node: yaml.Node, what: str, step: str | None) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(f"{what} must be a list", node, step)
        return list(node.value)

    def single(self, node: yaml.Node, what: str, step: str | None) -> tuple[str, yaml.Node, yaml.Node]:
        entries = self.mapping(node, what, step)
        if len(entries) != 1:
            raise self.error(f"{what} must be a map with exactly one key", node, step)
        return entries[0]

    # -- expressions and templates

    def expression(self, text: str, node: yaml.Node, step: str | None) -> ast.ExprTemplate:
        quote = 1 if getattr(node, "style", None) in ("'", '"') else 0
        if len(text) > MAX_EXPRESSION_LENGTH:
            raise self.error(f"expression longer than {MAX_EXPRESSION_LENGTH} characters", node, step)
        try:
            expr = parse_expression(text[2:-1])
        except ExpressionSyntaxError as error:
            raise self.error(
                f"invalid expression: {error.message}", node, step, extra_column=quote + 2 + error.offset
            ) from None
        start = position(node)
        return ast.ExprTemplate(expr, text, start, start.column + quote + 2)

    def template(self, node: yaml.Node, ctx: _Context) -> ast.Template:
        if isinstance(node, yaml.ScalarNode):
            value = self.plain(node)
            if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
                return self.expression(value, node, ctx.step)
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

    def build(self, root: yaml.Node) -> ast.Program:
        routine_nodes = self.declare_routines(root)
        routines: dict[str, ast.Routine] = {}
        for name, key_node, steps_node in routine_nodes:
            steps = self.steps(steps_node, _Context(routine=name))
            routines[name] = ast.Routine(name, self.routines[name], steps, position(key_node))
        return ast.Program(routines, self.source, self.filename)

    def declare_routines(self, root: yaml.Node) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """Every routine's name and parameters, before any step is built; returns (name, key, steps)."""
        if isinstance(root, yaml.SequenceNode):
            self.routines["main"] = ()
            return [("main", root, root)]
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
            self.routines[name] = params
            routine_nodes.append((name, key_node, entries["steps"][1]))
        if "main" not in self.routines:
            raise self.error("the workflow has no 'main' routine", root)
        return routine_nodes

    def params(self, node: yaml.Node, routine: str) -> tuple[ast.Param, ...]:
        params: list[ast.Param] = []
        for item in self.sequence(node, f"params of '{routine}'", None):
            if isinstance(item, yaml.MappingNode):
                name, _, default = self.single(item, "a parameter with a default", None)
                params.append(ast.Param(name, self.plain(default), True))
            else:
                params.append(ast.Param(self.text(item, "a parameter name", None), None, False))
        return tuple(params)

    # -- steps

    def steps(self, node: yaml.Node, ctx: _Context) -> tuple[ast.Step, ...]:
        if ctx.depth > MAX_NESTING_DEPTH:
            raise self.error("steps are nested too deeply", node, ctx.step)
        steps = []
        for item in self.sequence(node, "steps", ctx.step):
            name, key_node, body = self.single(item, "a step", ctx.step)
            inner = _Context(ctx.routine, name, ctx.parallel_depth, ctx.depth + 1)
            steps.append(self.step(name, key_node, body, inner))
        return tuple(steps)

    def step(self, name: str, key_node: yaml.Node, body: yaml.Node, ctx: _Context) -> ast.Step:
        entries = self.step_entries(name, body)
        next_target = self.text(entries["next"][1], "next", name) if "next" in entries else None
        kind = next((k for k in KIND_KEYS if k in entries), None)
        at = position(key_node)
        if kind is None:
            if next_target is None:
                raise self.error("the step does nothing", key_node, name)
            return ast.NextStep(name, at, next_target)
        node = entries[kind][1]
        if kind == "assign":
            return ast.AssignStep(name, at, next_target, self.assignments(node, ctx))
        if kind == "call":
            return self.call_step(name, at, next_target, entries, ctx)
        if kind == "return":
            return ast.ReturnStep(name, at, next_target, self.template(node, ctx))
        if kind == "raise":
            return ast.RaiseStep(name, at, next_target, self.template(node, ctx))
        if kind == "steps":
            return ast.StepsStep(name, at, next_target, self.steps(node, ctx))
        if kind == "switch":
            return self.switch_step(name, at, next_target, node, ctx)
        if kind == "for":
            return self.for_step(name, at, next_target, node, ctx)
        if kind == "parallel":
            return self.parallel_step(name, at, next_target, node, ctx)
        return self.try_step(name, at, next_target, entries, ctx)

    def step_entries(self, name: str, body: yaml.Node) -> Entries:
        entries = {k: (kn, v) for k, kn, v in self.mapping(body, f"step '{name}'", name)}
        for key, (key_node, _) in entries.items():
            if key not in STEP_KEYS:
                raise self.error(f"unknown step key '{key}'", key_node, name)
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
        return entries

    def assignments(self, node: yaml.Node, ctx: _Context) -> tuple[ast.Assignment, ...]:
        items = self.sequence(node, "assign", ctx.step)
        if len(items) > MAX_ASSIGNMENTS:
            raise self.error(f"at most {MAX_ASSIGNMENTS} assignments per step", node, ctx.step)
        result = []
        for item in items:
            key, key_node, value = self.single(item, "an assignment", ctx.step)
            target, path = self.target(key, key_node, ctx)
            result.append(ast.Assignment(target, path, self.template(value, ctx), position(key_node)))
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
            elif isinstance(expr, ast.Index):
                path.append(expr.index)
            else:
                raise self.error(f"invalid assignment target '{text}'", node, ctx.step)
            expr = expr.target
        return expr.name, tuple(reversed(path))

    def call_step(
        self, name: str, at: ast.Position, next_target: str | None, entries: Entries, ctx: _Context
    ) -> ast.CallStep:
        function_node = entries["call"][1]
        function = self.text(function_node, "call", name)
        args: list[tuple[str, ast.Template]] = []
        if "args" in entries:
            for key, _, value in self.mapping(entries["args"][1], "args", name):
                args.append((key, self.template(value, ctx)))
        if function in self.routines:
            kind = "subworkflow"
        elif is_connector(function):
            kind = "connector"
        else:
            kind = "builtin"
        result = self.text(entries["result"][1], "result", name) if "result" in entries else None
        return ast.CallStep(
            name,
            at,
            next_target,
            function,
            tuple(args),
            result,
            kind,
            call_position=position(function_node),
            args_position=position(entries["args"][1]) if "args" in entries else None,
            result_position=position(entries["result"][1]) if "result" in entries else None,
        )

    def switch_step(
        self, name: str, at: ast.Position, next_target: str | None, node: yaml.Node, ctx: _Context
    ) -> ast.SwitchStep:
        items = self.sequence(node, "switch", name)
        if len(items) > MAX_SWITCH_CONDITIONS:
            raise self.error(f"at most {MAX_SWITCH_CONDITIONS} switch conditions", node, name)
        if not items:
            raise self.error("switch needs at least one condition", node, name)
        return ast.SwitchStep(
            name, at, next_target, tuple(self.switch_case(name, item, ctx) for item in items)
        )

    def switch_case(self, name: str, item: yaml.Node, ctx: _Context) -> ast.SwitchCase:
        entries = {k: (kn, v) for k, kn, v in self.mapping(item, "a switch condition", name)}
        if "condition" not in entries:
            raise self.error("a switch entry needs a 'condition'", item, name)
        self.refuse_unknown(entries, "a switch condition", name, STEP_KEYS | {"condition"})
        condition = self.template(entries["condition"][1], ctx)
        case_next = self.text(entries["next"][1], "next", name) if "next" in entries else None
        rest = [(kn, v) for k, (kn, v) in entries.items() if k not in ("condition", "next")]
        body: ast.Step | None = None
        if rest:
            inner = yaml.MappingNode("tag:yaml.org,2002:map", rest, item.start_mark, item.end_mark)
            body = self.step(name, item, inner, ctx)
        return ast.SwitchCase(condition, position(item), case_next, body)

    def for_step(
        self, name: str, at: ast.Position, next_target: str | None, node: yaml.Node, ctx: _Context
    ) -> ast.ForStep:
        entries = self.entries(node, "for", name, frozenset({"value", "index", "in", "range", "steps"}))
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
        steps = self.steps(entries["steps"][1], _Context(ctx.routine, name, ctx.parallel_depth, ctx.depth))
        return ast.ForStep(name, at, next_target, value, index, items, range_, steps)

    def parallel_step(
        self, name: str, at: ast.Position, next_target: str | None, node: yaml.Node, ctx: _Context
    ) -> ast.ParallelStep:
        allowed = frozenset({"shared", "concurrency_limit", "exception_policy", "branches", "for"})
        entries = self.entries(node, "parallel", name, allowed)
        if ctx.parallel_depth >= MAX_PARALLEL_NESTING:
            raise self.error(f"parallel steps may be nested at most {MAX_PARALLEL_NESTING} deep", node, name)
        if ("branches" in entries) == ("for" in entries):
            raise self.error("parallel needs exactly one of 'branches' and 'for'", node, name)
        shared_nodes = self.sequence(entries["shared"][1], "shared", name) if "shared" in entries else []
        shared = tuple(self.text(v, "a shared variable", name) for v in shared_nodes)
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
        inner = _Context(ctx.routine, name, ctx.parallel_depth + 1, ctx.depth)
        branches = self.branches(name, entries["branches"][1], inner) if "branches" in entries else None
        loop = self.for_step(name, at, None, entries["for"][1], inner) if "for" in entries else None
        shared_at = tuple(position(v) for v in shared_nodes)
        return ast.ParallelStep(name, at, next_target, shared, limit, policy, branches, loop, shared_at)

    def branches(self, name: str, node: yaml.Node, inner: _Context) -> tuple[ast.Branch, ...]:
        branch_nodes = self.sequence(node, "branches", name)
        if not 2 <= len(branch_nodes) <= MAX_BRANCHES:
            raise self.error(f"parallel needs 2 to {MAX_BRANCHES} branches", node, name)
        branches = []
        for branch_node in branch_nodes:
            branch_name, key_node, branch_body = self.single(branch_node, "a branch", name)
            branch_entries = {k: v for k, _, v in self.mapping(branch_body, "a branch", branch_name)}
            if set(branch_entries) != {"steps"}:
                raise self.error("a branch must have exactly 'steps'", branch_body, branch_name)
            branch_ctx = _Context(inner.routine, branch_name, inner.parallel_depth, inner.depth + 1)
            steps = self.steps(branch_entries["steps"], branch_ctx)
            branches.append(ast.Branch(branch_name, position(key_node), steps))
        return tuple(branches)

    def try_step(
        self, name: str, at: ast.Position, next_target: str | None, entries: Entries, ctx: _Context
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
        if "except" not in entries:
            return ast.TryStep(name, at, next_target, body, retry, None, None)
        except_entries = self.entries(entries["except"][1], "except", name, frozenset({"as", "steps"}))
        if "steps" not in except_entries:
            raise self.error("except needs 'steps'", entries["except"][1], name)
        as_node = except_entries["as"][1] if "as" in except_entries else None
        except_as = self.text(as_node, "as", name) if as_node is not None else None
        except_steps = self.steps(except_entries["steps"][1], ctx)
        as_at = position(as_node) if as_node is not None else None
        return ast.TryStep(name, at, next_target, body, retry, except_as, except_steps, as_at)

    def check_retry_map(self, node: yaml.Node, step: str) -> None:
        entries = self.entries(node, "retry", step, frozenset({"predicate", "max_retries", "backoff"}))
        if "backoff" in entries and isinstance(entries["backoff"][1], yaml.MappingNode):
            self.entries(
                entries["backoff"][1],
                "backoff",
                step,
                frozenset({"initial_delay", "max_delay", "multiplier"}),
            )
