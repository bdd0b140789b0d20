"""Deploying workflows through the real ``google-cloud-workflows`` client: create/get/list/update/delete,
revisions, long-running operations, user env var rules, deploy errors."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.cloud.workflows_v1.types import workflows as wf
from google.protobuf import field_mask_pb2

NEEDS_INTERPRETER = pytest.mark.skipif(
    importlib.util.find_spec("localcloud.workflows.engine.interpreter") is None,
    reason="the Workflows interpreter (localcloud.workflows.engine.interpreter) is not there yet",
)

HELLO = """
main:
  params: [args]
  steps:
    - done:
        return: ${"hello " + args.name}
"""

GOODBYE = HELLO.replace("hello ", "goodbye ")


def test_getting_an_unknown_workflow_is_not_found(engine: Any) -> None:
    with pytest.raises(gexc.NotFound):
        engine.workflows.get_workflow(name=f"{engine.parent}/workflows/missing")


def test_bad_workflow_id_is_invalid_argument(engine: Any) -> None:
    with pytest.raises(gexc.InvalidArgument):
        engine.workflows.create_workflow(
            parent=engine.parent,
            workflow=wf.Workflow(source_contents=HELLO),
            workflow_id="9-starts-with-digit",
        ).result()


@pytest.mark.parametrize(
    "env",
    [
        {"GOOGLE_THING": "x"},
        {"WORKFLOWS_THING": "x"},
        {"": "x"},
        {f"K{i}": "v" for i in range(21)},
        {"BIG": "x" * 4097},
    ],
)
def test_user_env_vars_breaking_the_documented_rules_are_refused(engine: Any, env: dict[str, str]) -> None:
    with pytest.raises(gexc.InvalidArgument):
        engine.workflows.create_workflow(
            parent=engine.parent,
            workflow=wf.Workflow(source_contents=HELLO, user_env_vars=env),
            workflow_id="env-test",
        ).result()


@NEEDS_INTERPRETER
def test_created_workflow_is_returned_by_the_operation_and_by_get(engine: Any) -> None:
    created = engine.deploy(
        HELLO, env={"SAGA_TASK_QUEUE_PATH": "projects/p/locations/l/queues/q"}, labels={"team": "saga"}
    )
    assert created.name.startswith(f"{engine.parent}/workflows/wf-")
    assert created.state == wf.Workflow.State.ACTIVE
    assert created.revision_id.startswith("000001-") and len(created.revision_id) == 10
    fetched = engine.workflows.get_workflow(name=created.name)
    assert fetched.source_contents == HELLO
    assert dict(fetched.user_env_vars) == {"SAGA_TASK_QUEUE_PATH": "projects/p/locations/l/queues/q"}
    assert dict(fetched.labels) == {"team": "saga"}
    with pytest.raises(gexc.AlreadyExists):
        engine.workflows.create_workflow(
            parent=engine.parent,
            workflow=wf.Workflow(source_contents=HELLO),
            workflow_id=created.name.rsplit("/", 1)[1],
        ).result()


@NEEDS_INTERPRETER
def test_update_makes_a_new_revision_only_when_source_or_env_change(engine: Any) -> None:
    created = engine.deploy(HELLO)
    relabelled = engine.workflows.update_workflow(
        workflow=wf.Workflow(name=created.name, description="same code"),
        update_mask=field_mask_pb2.FieldMask(paths=["description"]),
    ).result()
    assert relabelled.revision_id == created.revision_id
    assert relabelled.description == "same code"

    changed = engine.workflows.update_workflow(
        workflow=wf.Workflow(name=created.name, source_contents=GOODBYE)
    ).result()
    assert changed.revision_id.startswith("000002-")
    rerouted = engine.workflows.update_workflow(
        workflow=wf.Workflow(name=created.name, user_env_vars={"A": "1"}),
        update_mask=field_mask_pb2.FieldMask(paths=["user_env_vars"]),
    ).result()
    assert rerouted.revision_id.startswith("000003-")
    assert rerouted.source_contents == GOODBYE

    revisions = [
        w.revision_id for w in engine.workflows.list_workflow_revisions(request={"name": created.name})
    ]
    assert revisions == [rerouted.revision_id, changed.revision_id, created.revision_id]
    old = engine.workflows.get_workflow(request={"name": created.name, "revision_id": created.revision_id})
    assert old.source_contents == HELLO


@NEEDS_INTERPRETER
def test_list_pages_through_workflows_and_delete_removes_one(engine: Any) -> None:
    names = {engine.deploy(HELLO).name for _ in range(3)}
    pager = engine.workflows.list_workflows(request={"parent": engine.parent, "page_size": 2})
    assert {w.name for w in pager} >= names
    first_page = engine.workflows.list_workflows(request={"parent": engine.parent, "page_size": 2})._response
    assert len(first_page.workflows) == 2 and first_page.next_page_token

    victim = sorted(names)[0]
    engine.workflows.delete_workflow(name=victim).result()
    with pytest.raises(gexc.NotFound):
        engine.workflows.get_workflow(name=victim)
    assert victim not in {w.name for w in engine.workflows.list_workflows(parent=engine.parent)}


@NEEDS_INTERPRETER
def test_revisions_page_newest_first(engine: Any) -> None:
    created = engine.deploy(HELLO)
    revisions = [created.revision_id]
    for n in range(2):
        workflow = wf.Workflow(name=created.name, source_contents=HELLO + f"# edit {n}\n")
        mask = {"paths": ["source_contents"]}
        updated = engine.workflows.update_workflow(workflow=workflow, update_mask=mask).result()
        revisions.append(updated.revision_id)
    request = {"name": created.name, "page_size": 2}
    first = engine.workflows.list_workflow_revisions(request=request)._response
    assert [w.revision_id for w in first.workflows] == [revisions[2], revisions[1]]
    second = engine.workflows.list_workflow_revisions(
        request={**request, "page_token": first.next_page_token}
    )
    assert [w.revision_id for w in second._response.workflows] == [revisions[0]]
    assert not second._response.next_page_token
    with pytest.raises(gexc.InvalidArgument):
        list(engine.workflows.list_workflows(request={"parent": engine.parent, "page_size": -1}))


@NEEDS_INTERPRETER
def test_operations_can_be_polled_by_name(engine: Any) -> None:
    operation = engine.workflows.create_workflow(
        parent=engine.parent, workflow=wf.Workflow(source_contents=HELLO), workflow_id="polled-workflow"
    )
    assert operation.done()
    fetched = engine.workflows.get_operation(request={"name": operation.operation.name})
    assert fetched.done and fetched.name == operation.operation.name


@NEEDS_INTERPRETER
def test_deploy_error_is_invalid_argument_naming_the_problem(engine: Any) -> None:
    broken = """
main:
  steps:
    - first:
        assign:
          - x: ${1 +}
"""
    with pytest.raises(gexc.InvalidArgument) as raised:
        engine.workflows.create_workflow(
            parent=engine.parent, workflow=wf.Workflow(source_contents=broken), workflow_id="broken-workflow"
        ).result()
    assert "first" in raised.value.message or "line" in raised.value.message
    with pytest.raises(gexc.NotFound):
        engine.workflows.get_workflow(name=f"{engine.parent}/workflows/broken-workflow")
