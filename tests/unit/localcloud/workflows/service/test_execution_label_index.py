"""ListExecutions with a ``labels.KEY="VALUE"`` filter (what start_saga asks before every saga) answers
from the label index: the same executions as a scan, newest first, and forgets executions that are
deleted or dropped from retention."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from google.cloud.workflows import executions_v1

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("localcloud.workflows.interpreter") is None,
    reason="the Workflows interpreter (localcloud.workflows.interpreter) is not there yet",
)

ECHO = """
main:
  params: [args]
  steps:
    - check:
        switch:
          - condition: ${args.fail}
            raise: "refused"
    - done:
        return: ${args.n}
"""


def listed(engine: Any, workflow: Any, text: str) -> list[str]:
    return [
        e.name for e in engine.executions.list_executions(request={"parent": workflow.name, "filter": text})
    ]


def test_label_filter_lists_only_that_label_newest_first(engine: Any) -> None:
    workflow = engine.deploy(ECHO)
    other = engine.deploy(ECHO)
    names: dict[str, list[str]] = {"trip-a": [], "trip-b": []}
    for n in range(6):
        saga = "trip-a" if n % 3 == 0 else "trip-b"
        started = engine.execute(workflow, {"n": n, "fail": n == 3}, labels={"saga_id": saga})
        names[saga].append(started.name)
        engine.wait_until(started.name)
    engine.wait_until(engine.execute(other, {"n": 9, "fail": False}, labels={"saga_id": "trip-a"}).name)

    assert listed(engine, workflow, 'labels.saga_id="trip-a"') == list(reversed(names["trip-a"]))
    assert listed(engine, workflow, 'labels.saga_id="trip-b"') == list(reversed(names["trip-b"]))
    assert listed(engine, workflow, 'labels.saga_id="trip-a" AND state="FAILED"') == [names["trip-a"][1]]
    everything = listed(engine, workflow, "")
    assert len(everything) == 6
    assert listed(engine, workflow, 'labels.saga_id="trip-a" OR labels.saga_id="trip-b"') == everything
    assert listed(engine, workflow, 'labels.saga_id="trip-c"') == []
    page = engine.executions.list_executions(
        request={"parent": workflow.name, "filter": 'labels.saga_id="trip-b"', "page_size": 1}
    )._response
    assert [e.name for e in page.executions] == [names["trip-b"][-1]] and page.next_page_token


def test_label_filter_forgets_executions_dropped_from_retention(engine: Any) -> None:
    engine.service.state.retained_finished = 2
    workflow = engine.deploy(ECHO)
    names = []
    for n in range(4):
        started = engine.execute(workflow, {"n": n, "fail": False}, labels={"saga_id": "trip-r"})
        names.append(started.name)
        engine.wait_until(started.name)
    assert listed(engine, workflow, 'labels.saga_id="trip-r"') == [names[3], names[2]]
    indexed = engine.service.state.workflow(workflow.name).by_label[("saga_id", "trip-r")]
    assert sorted(r.name for r in indexed.values()) == sorted(names[2:])


def test_label_filter_after_the_workflow_is_recreated_finds_nothing_old(engine: Any) -> None:
    workflow = engine.deploy(ECHO)
    engine.wait_until(engine.execute(workflow, {"n": 1, "fail": False}, labels={"saga_id": "x"}).name)
    engine.workflows.delete_workflow(name=workflow.name).result(timeout=10)
    again = engine.workflows.create_workflow(
        parent=engine.parent,
        workflow={"source_contents": ECHO},
        workflow_id=workflow.name.rsplit("/", 1)[1],
    ).result(timeout=10)
    assert listed(engine, again, 'labels.saga_id="x"') == []
    execution = executions_v1.Execution(argument='{"n": 2, "fail": false}', labels={"saga_id": "x"})
    fresh = engine.executions.create_execution(parent=again.name, execution=execution)
    engine.wait_until(fresh.name)
    assert listed(engine, again, 'labels.saga_id="x"') == [fresh.name]
