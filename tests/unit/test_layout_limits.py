"""The rooms stay small: no source file over 600 lines, no function over 60 lines, and no block in the saga
library worse than radon's grade C (cyclomatic complexity over 20).

Tests and the Workflows corpus are data-heavy by nature and are left out; so is anything generated. The
limits come from the renovation that split the crowded modules; a change that crosses one should split
the module or the function rather than raise the limit."""

from __future__ import annotations

import ast
from pathlib import Path

from radon.complexity import cc_rank, cc_visit
from radon.visitors import Class, Function

ROOT = Path(__file__).resolve().parents[2]
SOURCE_TREES = (
    "shared/saga_orchestrator",
    "participant/saga_participant",
    "functions",
    "localcloud",
    "devstack",
    "examples",
    "bench",
)
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 60
WORST_GRADE = "C"


def _sources() -> list[Path]:
    return sorted(path for tree in SOURCE_TREES for path in (ROOT / tree).rglob("*.py"))


def test_the_source_trees_are_there() -> None:
    assert len(_sources()) > 100


def test_no_source_file_is_over_600_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): count
        for path in _sources()
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_FILE_LINES
    }
    assert long == {}


def test_no_function_is_over_60_lines() -> None:
    long = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    assert long == []


def _blocks(blocks: list[Function | Class]) -> list[Function | Class]:
    """Every block radon grades, methods and closures included (``radon cc`` lists them too)."""
    found: list[Function | Class] = []
    for block in blocks:
        found.append(block)
        inner = block.methods if isinstance(block, Class) else block.closures
        found.extend(_blocks(list(inner)))
    return found


def test_no_block_in_the_saga_library_is_worse_than_grade_c() -> None:
    worse = [
        f"{path.relative_to(ROOT)}:{block.lineno} {block.name} "
        f"({cc_rank(block.complexity)}, {block.complexity})"
        for path in sorted((ROOT / "shared" / "saga_orchestrator").rglob("*.py"))
        for block in _blocks(cc_visit(path.read_text(encoding="utf-8")))
        if cc_rank(block.complexity) > WORST_GRADE
    ]
    assert worse == []


def test_the_grade_check_sees_a_method_as_radon_does() -> None:
    branches = "".join(f"        if x == {i}:\n            return {i}\n" for i in range(25))
    source = f"class A:\n    def m(self, x):\n{branches}        return -1\n"
    graded = {block.name: cc_rank(block.complexity) for block in _blocks(cc_visit(source))}
    assert graded["m"] > WORST_GRADE
