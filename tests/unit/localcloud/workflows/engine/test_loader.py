"""Loading a workflow end to end: YAML errors, and the project's own saga workflow."""

from __future__ import annotations

import pytest

from localcloud.workflows.engine.loader import load_workflow
from localcloud.workflows.lang.errors import DeployError


def test_yaml_syntax_error_has_a_line_and_caret() -> None:
    with pytest.raises(DeployError) as raised:
        load_workflow("- a:\n    assign:\n      - x: [1, 2\n")
    assert raised.value.line is not None
    assert "invalid YAML" in str(raised.value)


def test_the_project_saga_workflow_loads() -> None:
    from pathlib import Path

    from localcloud.workflows.engine.host import SUPPORTED_CONNECTORS

    path = Path(__file__).resolve().parents[5] / "workflows" / "saga_orchestrator.yaml"
    program = load_workflow(path.read_text(encoding="utf-8"), connectors=SUPPORTED_CONNECTORS)
    assert "main" in program.routines


def test_an_empty_workflow_is_refused() -> None:
    with pytest.raises(DeployError, match="the workflow is empty"):
        load_workflow("# nothing here\n")
