"""Loads a workflow (YAML or JSON) the way the real service deploys it: the YAML is composed, built into
an AST (``builder.py``: every expression parsed once, the grammar enforced), checked as a whole
(``checks.py``), then compiled (``compiler.py``). A mistake raises ``DeployError`` naming the step, the
line and the column, with a caret under it.
"""

from __future__ import annotations

import re

import yaml

from localcloud.workflows.engine.builder import Builder
from localcloud.workflows.engine.checks import check_program
from localcloud.workflows.engine.compiler import CompiledProgram, compile_program
from localcloud.workflows.engine.host import SUPPORTED_CONNECTORS
from localcloud.workflows.lang.errors import DeployError

__all__ = ["SUPPORTED_CONNECTORS", "CompiledProgram", "load_workflow"]


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
) -> CompiledProgram:
    """Parse, check and compile a workflow definition. Raises ``DeployError`` for the first mistake found:
    a mistake of grammar before one that needs the whole program (a name, a function, a jump)."""
    program = Builder(source, filename).build(_compose(source))
    check_program(program, connectors)
    return compile_program(program)


def _compose(source: str) -> yaml.Node:
    try:
        root = yaml.compose(source, Loader=_YamlLoader)
    except yaml.MarkedYAMLError as error:
        lines = source.splitlines()
        mark = error.problem_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        source_line = lines[line - 1] if line and 0 < line <= len(lines) else None
        raise DeployError(
            f"invalid YAML: {error.problem}", line=line, column=column, source_line=source_line
        ) from None
    except yaml.YAMLError as error:
        raise DeployError(f"invalid YAML: {error}") from None
    if root is None:
        raise DeployError("the workflow is empty")
    return root
