"""The typed AST: expressions, value templates (YAML values that may hold ``${...}``) and steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# ------------------------------------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Expr:
    offset: int


@dataclass(frozen=True)
class Literal(Expr):
    value: Any


@dataclass(frozen=True)
class Name(Expr):
    name: str


@dataclass(frozen=True)
class Member(Expr):
    target: Expr
    name: str


@dataclass(frozen=True)
class Index(Expr):
    target: Expr
    index: Expr


@dataclass(frozen=True)
class Unary(Expr):
    op: str  # "-" or "not"
    operand: Expr


@dataclass(frozen=True)
class Binary(Expr):
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class ListLit(Expr):
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class MapLit(Expr):
    entries: tuple[tuple[Expr, Expr], ...]


@dataclass(frozen=True)
class Call(Expr):
    function: str  # dotted name, e.g. "text.split" or a subworkflow name
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class FunctionRef:
    """A function used as a value, e.g. ``predicate: ${http.default_retry_predicate}`` or a subworkflow."""

    name: str


def dotted_name(expr: Expr) -> str | None:
    """``a.b.c`` as the text ``"a.b.c"``; None for anything that is not a plain dotted name."""
    if isinstance(expr, Name):
        return expr.name
    if isinstance(expr, Member):
        head = dotted_name(expr.target)
        return None if head is None else f"{head}.{expr.name}"
    return None


# ----------------------------------------------------------------------------------------------- templates


@dataclass(frozen=True)
class Position:
    """Where a YAML node starts in the source, counted from 1."""

    line: int
    column: int


@dataclass(frozen=True)
class Template:
    """A YAML value evaluated at run time: constants stay as they are, ``${...}`` strings are evaluated."""


@dataclass(frozen=True)
class Const(Template):
    value: Any


@dataclass(frozen=True)
class ExprTemplate(Template):
    """``source`` is the YAML text (``${...}``); ``position`` is where its node starts and
    ``expr_column`` the column of the expression's first character (after a quote and ``${``), to which
    an expression node's ``offset`` adds."""

    expr: Expr
    source: str
    position: Position | None = field(default=None, compare=False)
    expr_column: int = field(default=0, compare=False)


@dataclass(frozen=True)
class ListTemplate(Template):
    items: tuple[Template, ...]


@dataclass(frozen=True)
class MapTemplate(Template):
    entries: tuple[tuple[str, Template], ...]


# --------------------------------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class Step:
    name: str
    position: Position
    next: str | None


@dataclass(frozen=True)
class Assignment:
    target: str  # the root variable
    path: tuple[Expr, ...]  # each element evaluates to a key (string) or an index (int)
    value: Template
    position: Position | None = field(default=None, compare=False)  # of the target


@dataclass(frozen=True)
class AssignStep(Step):
    assignments: tuple[Assignment, ...]


@dataclass(frozen=True)
class CallStep(Step):
    function: str
    args: tuple[tuple[str, Template], ...]
    result: str | None
    kind: str  # "subworkflow", "builtin" or "connector"
    call_position: Position | None = field(default=None, compare=False)
    args_position: Position | None = field(default=None, compare=False)
    result_position: Position | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ReturnStep(Step):
    value: Template


@dataclass(frozen=True)
class RaiseStep(Step):
    value: Template


@dataclass(frozen=True)
class NextStep(Step):
    """A step that only jumps."""


@dataclass(frozen=True)
class StepsStep(Step):
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class SwitchCase:
    condition: Template
    position: Position
    next: str | None
    body: Step | None  # the inline step (steps / assign / call / return / raise) of the condition


@dataclass(frozen=True)
class SwitchStep(Step):
    cases: tuple[SwitchCase, ...]


@dataclass(frozen=True)
class ForStep(Step):
    value: str
    index: str | None
    items: Template | None  # ``in``
    range: Template | None
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Branch:
    name: str
    position: Position
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class ParallelStep(Step):
    shared: tuple[str, ...]
    concurrency_limit: Template | None
    exception_policy: str
    branches: tuple[Branch, ...] | None
    loop: ForStep | None
    shared_positions: tuple[Position, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class TryStep(Step):
    body: tuple[Step, ...]
    retry: (
        Template | None
    )  # evaluates to {predicate, max_retries, backoff: {initial_delay, max_delay, multiplier}}
    except_as: str | None
    except_steps: tuple[Step, ...] | None
    except_as_position: Position | None = field(default=None, compare=False)


# ------------------------------------------------------------------------------------------------ program


@dataclass(frozen=True)
class Param:
    name: str
    default: Any = None
    has_default: bool = False


@dataclass(frozen=True)
class Routine:
    name: str
    params: tuple[Param, ...]
    steps: tuple[Step, ...]
    position: Position


@dataclass(frozen=True)
class Program:
    routines: dict[str, Routine] = field(hash=False)
    source: str = field(repr=False, default="")
    filename: str = "workflow.yaml"

    @property
    def main(self) -> Routine:
        return self.routines["main"]
