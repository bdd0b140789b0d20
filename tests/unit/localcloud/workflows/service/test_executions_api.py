"""Running workflows through the real ``ExecutionsClient``: results as JSON strings, failures with the
error map, list order/filters/pages/views, cancel, argument and label checks, the admin page."""

from __future__ import annotations

import importlib.util
import json
import logging
from typing import Any

import pytest
import requests
from google.api_core import exceptions as gexc
from google.cloud.workflows import executions_v1

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("localcloud.workflows.engine.interpreter") is None,
    reason="the Workflows interpreter (localcloud.workflows.engine.interpreter) is not there yet",
)

ECHO = """
main:
  params: [args]
  steps:
    - check:
        switch:
          - condition: ${args.fail}
            raise:
              code: 409
              message: ${"refused " + args.name}
    - greet:
        return:
          greeting: ${"hello " + args.name}
          project: ${sys.get_env("GOOGLE_CLOUD_PROJECT_ID")}
          execution: ${sys.get_env("GOOGLE_CLOUD_WORKFLOW_EXECUTION_ID")}
          queue: ${sys.get_env("SAGA_TASK_QUEUE_PATH")}
"""

PARKED = """
main:
  steps:
    - make:
        call: events.create_callback_endpoint
        args:
          http_callback_method: POST
        result: cb
    - wait:
        call: events.await_callback
        args:
          callback: ${cb}
          timeout: 3600
        result: req
    - done:
        return: ${req.http_request.body}
"""


def test_execution_succeeds_with_a_json_string_result(engine: Any) -> None:
    workflow = engine.deploy(ECHO, env={"SAGA_TASK_QUEUE_PATH": "projects/p/locations/l/queues/q"})
    started = engine.execute(workflow, {"name": "Ada", "fail": False})
    assert started.state == executions_v1.Execution.State.ACTIVE
    assert started.workflow_revision_id == workflow.revision_id
    execution_id = started.name.rsplit("/", 1)[1]

    done = engine.wait_until(started.name)
    assert done.state.name == "SUCCEEDED"
    assert json.loads(done.result) == {
        "greeting": "hello Ada",
        "project": "local-project",
        "execution": execution_id,
        "queue": "projects/p/locations/l/queues/q",
    }
    assert not done.error.payload
    assert done.end_time >= done.start_time
    assert done.duration.total_seconds() >= 0
    assert json.loads(done.argument) == {"name": "Ada", "fail": False}


def test_failed_execution_carries_the_error_map_and_no_result(engine: Any) -> None:
    workflow = engine.deploy(ECHO)
    done = engine.wait_until(engine.execute(workflow, {"name": "Bob", "fail": True}).name)
    assert done.state.name == "FAILED"
    assert done.result == ""
    assert json.loads(done.error.payload) == {"code": 409, "message": "refused Bob"}
    assert done.error.context


def test_runtime_error_is_reported_with_its_tag(engine: Any) -> None:
    workflow = engine.deploy(ECHO)
    done = engine.wait_until(engine.execute(workflow, {"fail": False}).name)  # args.name is missing
    assert done.state.name == "FAILED"
    assert "KeyError" in json.loads(done.error.payload)["tags"]


def test_argument_must_be_json_and_at_most_32_kb(engine: Any) -> None:
    workflow = engine.deploy(ECHO)
    with pytest.raises(gexc.InvalidArgument):
        engine.executions.create_execution(
            parent=workflow.name, execution=executions_v1.Execution(argument="{not json")
        )
    with pytest.raises(gexc.InvalidArgument):
        engine.execute(workflow, {"name": "x" * (33 * 1024), "fail": False})
    with pytest.raises(gexc.InvalidArgument):
        engine.execute(workflow, {"name": "x", "fail": False}, labels={"Saga": "UPPER"})
    with pytest.raises(gexc.NotFound):
        engine.executions.create_execution(
            parent=workflow.name + "-missing", execution=executions_v1.Execution()
        )


def test_list_is_newest_first_filters_and_pages(engine: Any) -> None:
    workflow = engine.deploy(ECHO, labels={"team": "saga"})
    names = []
    for i, fail in enumerate([False, True, False]):
        started = engine.execute(
            workflow, {"name": f"n{i}", "fail": fail}, labels={"saga_id": f"trip-{i % 2}"}
        )
        names.append(started.name)
        engine.wait_until(started.name)

    listed = list(engine.executions.list_executions(parent=workflow.name))
    assert [e.name for e in listed] == list(reversed(names))
    assert listed[0].argument == ""  # BASIC view by default

    failed = list(
        engine.executions.list_executions(request={"parent": workflow.name, "filter": 'state="FAILED"'})
    )
    assert [e.name for e in failed] == [names[1]]
    trip0 = engine.executions.list_executions(
        request={
            "parent": workflow.name,
            "filter": 'labels.saga_id="trip-0"',
            "view": executions_v1.ExecutionView.FULL,
        }
    )
    trip0_list = list(trip0)
    assert [e.name for e in trip0_list] == [names[2], names[0]]
    assert dict(trip0_list[0].labels) == {"team": "saga", "saga_id": "trip-0"}  # inherited + own

    first = engine.executions.list_executions(request={"parent": workflow.name, "page_size": 2})._response
    assert len(first.executions) == 2 and first.next_page_token
    second = engine.executions.list_executions(
        request={"parent": workflow.name, "page_size": 2, "page_token": first.next_page_token}
    )._response
    assert [e.name for e in second.executions] == [names[0]]
    assert not second.next_page_token

    with pytest.raises(gexc.InvalidArgument):
        list(engine.executions.list_executions(request={"parent": workflow.name, "filter": 'colour="red"'}))


def test_cancel_stops_a_parked_execution_and_closes_its_callbacks(engine: Any) -> None:
    workflow = engine.deploy(PARKED)
    started = engine.execute(workflow)
    callback = engine.wait_for_callback(started.name, waiters=1)
    active = engine.executions.get_execution(name=started.name)
    assert active.state.name == "ACTIVE"
    assert [(s.routine, s.step) for s in active.status.current_steps] == [("main", "wait")]

    cancelled = engine.executions.cancel_execution(name=started.name)
    assert cancelled.state.name == "CANCELLED"
    assert cancelled.error.context
    assert engine.executions.get_execution(name=started.name).state.name == "CANCELLED"
    late = requests.post(
        engine.callback_url(callback),
        json={},
        headers={"Authorization": f"Bearer {engine.token()}"},
        timeout=10,
    )
    assert late.status_code == 404
    with pytest.raises(gexc.FailedPrecondition):
        engine.executions.cancel_execution(name=started.name)


def test_deleting_a_workflow_cancels_and_removes_its_executions(engine: Any) -> None:
    workflow = engine.deploy(PARKED)
    started = engine.execute(workflow)
    engine.wait_for_callback(started.name, waiters=1)
    engine.workflows.delete_workflow(name=workflow.name).result()
    with pytest.raises(gexc.NotFound):
        engine.executions.get_execution(name=started.name)


def test_admin_page_shows_state_and_billable_steps(engine: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="localcloud.workflows.executions")
    workflow = engine.deploy(PARKED)
    started = engine.execute(workflow)
    callback = engine.wait_for_callback(started.name, waiters=1)
    execution_id = started.name.rsplit("/", 1)[1]
    parked = requests.get(f"{engine.http}/admin/executions/{execution_id}", timeout=10).json()
    assert parked["state"] == "ACTIVE"
    assert parked["currentStep"] == {"routine": "main", "step": "wait"}

    requests.post(
        engine.callback_url(callback),
        json={"ok": True},
        headers={"Authorization": f"Bearer {engine.token()}"},
        timeout=10,
    ).raise_for_status()
    done = engine.wait_until(started.name)
    assert json.loads(done.result) == {"ok": True}
    finished = requests.get(f"{engine.http}/admin/executions/{execution_id}", timeout=10).json()
    assert finished["state"] == "SUCCEEDED"
    steps = finished["billableSteps"]
    assert steps["external"] >= 1  # await_callback is an external step
    assert steps["total"] == steps["internal"] + steps["external"] >= 3
    listing = requests.get(
        f"{engine.http}/admin/executions", params={"state": "SUCCEEDED"}, timeout=10
    ).json()
    assert execution_id in [e["executionId"] for e in listing["executions"]]
    ended = [json.loads(r.getMessage()) for r in caplog.records if execution_id in r.getMessage()]
    assert [(line["state"], line["billable_steps"]) for line in ended] == [("SUCCEEDED", steps)]


# --- the label index: ListExecutions with labels.KEY="VALUE" (what start_saga asks before and after
# every start) answers from an index, newest first, and forgets executions dropped from retention ---


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
        started = engine.execute(workflow, {"name": str(n), "fail": n == 3}, labels={"saga_id": saga})
        names[saga].append(started.name)
        engine.wait_until(started.name)
    engine.wait_until(engine.execute(other, {"name": "9", "fail": False}, labels={"saga_id": "trip-a"}).name)

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
    engine.service.state.executions.retained_finished = 2
    workflow = engine.deploy(ECHO)
    names = []
    for n in range(4):
        started = engine.execute(workflow, {"name": str(n), "fail": False}, labels={"saga_id": "trip-r"})
        names.append(started.name)
        engine.wait_until(started.name)
    assert listed(engine, workflow, 'labels.saga_id="trip-r"') == [names[3], names[2]]
    indexed = engine.service.state.workflow(workflow.name).by_label[("saga_id", "trip-r")]
    assert sorted(r.name for r in indexed.values()) == sorted(names[2:])


def test_label_filter_after_the_workflow_is_recreated_finds_nothing_old(engine: Any) -> None:
    workflow = engine.deploy(ECHO)
    engine.wait_until(engine.execute(workflow, {"name": "1", "fail": False}, labels={"saga_id": "x"}).name)
    engine.workflows.delete_workflow(name=workflow.name).result(timeout=10)
    again = engine.workflows.create_workflow(
        parent=engine.parent,
        workflow={"source_contents": ECHO},
        workflow_id=workflow.name.rsplit("/", 1)[1],
    ).result(timeout=10)
    assert listed(engine, again, 'labels.saga_id="x"') == []
    execution = executions_v1.Execution(argument='{"name": "2", "fail": false}', labels={"saga_id": "x"})
    fresh = engine.executions.create_execution(parent=again.name, execution=execution)
    engine.wait_until(fresh.name)
    assert listed(engine, again, 'labels.saga_id="x"') == [fresh.name]


def test_newest_first_pages_do_not_shift_when_executions_start_between_them(engine: Any) -> None:
    workflow = engine.deploy(ECHO)
    names = [engine.execute(workflow, {"name": str(n), "fail": False}).name for n in range(3)]
    first = engine.executions.list_executions(request={"parent": workflow.name, "page_size": 2})._response
    assert [e.name for e in first.executions] == [names[2], names[1]]
    engine.execute(workflow, {"name": "late", "fail": False})
    second = engine.executions.list_executions(
        request={"parent": workflow.name, "page_size": 2, "page_token": first.next_page_token}
    )._response
    assert [e.name for e in second.executions] == [names[0]]
    assert not second.next_page_token


def test_order_by_sorts_the_listing_and_pages_through_it(engine: Any) -> None:
    workflow = engine.deploy(ECHO)
    names = []
    for n in range(3):
        names.append(engine.execute(workflow, {"name": str(n), "fail": False}).name)
        engine.wait_until(names[-1])
    request = {"parent": workflow.name, "order_by": "startTime", "page_size": 2}
    first = engine.executions.list_executions(request=request)._response
    assert [e.name for e in first.executions] == names[:2]
    second = engine.executions.list_executions(request={**request, "page_token": first.next_page_token})
    assert [e.name for e in second._response.executions] == names[2:]
    assert not second._response.next_page_token
    descending = engine.executions.list_executions(request={**request, "order_by": "startTime desc"})
    assert [e.name for e in descending] == list(reversed(names))
    with pytest.raises(gexc.InvalidArgument):
        list(engine.executions.list_executions(request={**request, "order_by": "colour"}))


def test_list_refuses_a_negative_page_size_and_a_token_it_never_issued(engine: Any) -> None:
    workflow = engine.deploy(ECHO)
    engine.wait_until(engine.execute(workflow, {"name": "1", "fail": False}).name)
    for request in ({"page_size": -1}, {"page_token": "not a token"}, {"page_token": "eA=="}):
        with pytest.raises(gexc.InvalidArgument):
            list(engine.executions.list_executions(request={"parent": workflow.name, **request}))
