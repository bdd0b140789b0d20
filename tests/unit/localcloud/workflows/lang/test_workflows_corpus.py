"""The Workflows language compliance corpus: every case of ``tests/workflows_corpus/*.yaml``.

Each file is a list of entries ``{description, given, cases}``. ``given`` is either an expression
(``${...}``, run as ``return: <given>`` with the case's ``args`` bound to ``args``) or a whole workflow
source. A case has ``args`` and one of ``result`` (compared with types: 1 is not 1.0, true is not 1),
``error`` (``{tags: [...], message: substring}`` or any other payload expected exactly under
``payload``), or ``deploy_error`` (substring of the load error). ``steps`` optionally checks the billed
``{internal, external}`` counts; ``env`` sets user env vars. Time runs on a ManualClock.

Every case runs once, on the one back end: the expressions compiled to closures when the workflow loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from localcloud.clock import ManualClock
from localcloud.workflows.engine.host import ExecutionInfo
from localcloud.workflows.engine.interpreter import run_execution
from localcloud.workflows.engine.loader import load_workflow
from localcloud.workflows.engine.metering import StepMeter
from localcloud.workflows.engine.standalone import StandaloneHost, run_on_manual_clock
from localcloud.workflows.lang.errors import DeployError, WorkflowError
from localcloud.workflows.lang.values import type_name

CORPUS = Path(__file__).resolve().parents[5] / "tests" / "workflows_corpus"


def _cases() -> list[Any]:
    params = []
    for path in sorted(CORPUS.glob("*.yaml")):
        entries = yaml.safe_load(path.read_text(encoding="utf-8"))
        for number, entry in enumerate(entries):
            for index, case in enumerate(entry["cases"]):
                label = f"{path.stem}:{number}:{entry.get('description', '')[:40]}:{index}"
                params.append(pytest.param(entry["given"], case, id=label))
    return params


def _source(given: str) -> str:
    if given.lstrip().startswith("${"):
        quoted = given.replace("'", "''")
        return f"main:\n  params: [args]\n  steps:\n    - answer:\n        return: '{quoted}'\n"
    return given


def assert_same(actual: Any, expected: Any, path: str = "result") -> None:
    assert type_name(actual) == type_name(expected), f"{path}: {actual!r} is not {expected!r}"
    if isinstance(expected, list):
        assert len(actual) == len(expected), f"{path}: {actual!r} != {expected!r}"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{path}[{i}]")
    elif isinstance(expected, dict):
        assert list(actual) == list(expected), f"{path}: keys {list(actual)} != {list(expected)}"
        for key in expected:
            assert_same(actual[key], expected[key], f"{path}.{key}")
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


@pytest.mark.parametrize(("given", "case"), _cases())
async def test_corpus_case(given: str, case: dict[str, Any]) -> None:
    source = _source(given)
    if "deploy_error" in case:
        with pytest.raises(DeployError) as raised:
            load_workflow(source)
        assert case["deploy_error"] in str(raised.value)
        return
    program = load_workflow(source)
    clock = ManualClock()
    host = StandaloneHost(clock=clock, info=ExecutionInfo(user_env=case.get("env", {})))
    meter = StepMeter()
    run = run_execution(program, case.get("args"), host, meter=meter)
    if "error" in case:
        with pytest.raises(WorkflowError) as failed:
            await run_on_manual_clock(run, clock)
        expected = case["error"]
        payload = failed.value.payload
        if "payload" in expected:
            assert_same(payload, expected["payload"], "error")
        else:
            assert isinstance(payload, dict), payload
            for tag in expected.get("tags", []):
                assert tag in payload.get("tags", []), payload
            assert expected.get("message", "") in str(payload.get("message")), payload
    else:
        assert_same(await run_on_manual_clock(run, clock), case["result"])
    if "steps" in case:
        assert {"internal": meter.internal, "external": meter.external} == case["steps"]
