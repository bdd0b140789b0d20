"""The Executions REST API's step entries (``stepEntries.list`` / ``stepEntries.get``) and the index page,
over real HTTP against a running engine."""

from __future__ import annotations

import datetime
import json
from typing import Any

import requests
from google.cloud.workflows_v1.types import workflows as wf

from localcloud.clock import ManualClock
from localcloud.workflows.engine.history import StepHistory
from tests.support.eventually import eventually

EVERY_KIND = """
main:
  params: [args]
  steps:
    - init:
        assign:
          - total: 0
    - loop:
        for:
          value: v
          in: [1, 2]
          steps:
            - add:
                assign:
                  - total: ${total + v}
    - pick:
        switch:
          - condition: ${total > 100}
            next: done
          - condition: ${total > 2}
            assign:
              - big: true
    - guarded:
        try:
          call: explode
          args:
            why: nope
          result: ignored
        retry:
          predicate: ${always}
          max_retries: 1
          backoff:
            initial_delay: 0.01
            max_delay: 0.01
            multiplier: 1
        except:
          as: e
          steps:
            - note:
                assign:
                  - why: ${e.why}
    - fan:
        parallel:
          shared: [total]
          branches:
            - left:
                steps:
                  - one:
                      assign:
                        - total: ${total + 1}
            - right:
                steps:
                  - two:
                      assign:
                        - total: ${total + 1}
    - done:
        return: ${total}
explode:
  params: [why]
  steps:
    - boom:
        raise:
          why: ${why}
always:
  params: [e]
  steps:
    - agree:
        return: true
"""


def step_entries(engine: Any, execution: str, token: str | None = None, **query: Any) -> requests.Response:
    return requests.get(
        f"{engine.http}/v1/{execution}/stepEntries",
        params=query,
        headers={"Authorization": f"Bearer {token or engine.token()}"},
        timeout=10,
    )


def all_entries(engine: Any, execution: str, **query: Any) -> list[dict[str, Any]]:
    response = step_entries(engine, execution, **query)
    assert response.status_code == 200, response.text
    return list(response.json()["stepEntries"])


def moment(rfc3339: str) -> datetime.datetime:
    assert rfc3339.endswith("Z")
    return datetime.datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))


def finished(engine: Any, source: str, argument: Any = None) -> str:
    workflow = engine.deploy(source)
    execution = engine.execute(workflow, argument)
    engine.wait_until(execution.name)
    return str(execution.name)


def test_every_step_kind_is_an_entry_with_its_type_state_and_place(engine: Any) -> None:
    name = finished(engine, EVERY_KIND)
    entries = all_entries(engine, name)
    seen = [(e["routine"], e["step"], e["stepType"], e["state"]) for e in entries]
    assert seen == [
        ("main", "init", "STEP_ASSIGN", "STATE_SUCCEEDED"),
        ("main", "loop", "STEP_FOR", "STATE_SUCCEEDED"),
        ("main", "loop", "STEP_FOR_ITERATION", "STATE_SUCCEEDED"),
        ("main", "add", "STEP_ASSIGN", "STATE_SUCCEEDED"),
        ("main", "loop", "STEP_FOR_ITERATION", "STATE_SUCCEEDED"),
        ("main", "add", "STEP_ASSIGN", "STATE_SUCCEEDED"),
        ("main", "pick", "STEP_SWITCH", "STATE_SUCCEEDED"),
        ("main", "pick", "STEP_CONDITION", "STATE_SUCCEEDED"),
        ("main", "pick", "STEP_ASSIGN", "STATE_SUCCEEDED"),
        ("main", "guarded", "STEP_TRY_RETRY_EXCEPT", "STATE_SUCCEEDED"),
        ("main", "guarded", "STEP_TRY", "STATE_FAILED"),
        ("main", "guarded", "STEP_SUBWORKFLOW_CALL", "STATE_FAILED"),
        ("explode", "boom", "STEP_RAISE", "STATE_FAILED"),
        ("always", "agree", "STEP_RETURN", "STATE_SUCCEEDED"),
        ("main", "guarded", "STEP_RETRY", "STATE_FAILED"),
        ("main", "guarded", "STEP_SUBWORKFLOW_CALL", "STATE_FAILED"),
        ("explode", "boom", "STEP_RAISE", "STATE_FAILED"),
        ("main", "guarded", "STEP_EXCEPT", "STATE_SUCCEEDED"),
        ("main", "note", "STEP_ASSIGN", "STATE_SUCCEEDED"),
        ("main", "fan", "STEP_PARALLEL_BRANCH", "STATE_SUCCEEDED"),
        ("main", "left", "STEP_PARALLEL_BRANCH_ENTRY", "STATE_SUCCEEDED"),
        ("main", "one", "STEP_ASSIGN", "STATE_SUCCEEDED"),
        ("main", "right", "STEP_PARALLEL_BRANCH_ENTRY", "STATE_SUCCEEDED"),
        ("main", "two", "STEP_ASSIGN", "STATE_SUCCEEDED"),
        ("main", "done", "STEP_RETURN", "STATE_SUCCEEDED"),
    ]
    assert [e["entryId"] for e in entries] == [str(n) for n in range(1, 26)]
    assert all(e["name"] == f"{name}/stepEntries/{e['entryId']}" for e in entries)
    by_id = {int(e["entryId"]): e for e in entries}
    assert by_id[1]["navigationInfo"] == {"next": "2"}
    assert by_id[2]["navigationInfo"] == {"children": ["3", "5"], "next": "7", "previous": "1"}
    assert by_id[5]["stepEntryMetadata"] == {"progressNumber": "2", "progressType": "PROGRESS_TYPE_FOR"}
    assert by_id[8]["stepEntryMetadata"] == {"progressNumber": "2", "progressType": "PROGRESS_TYPE_SWITCH"}
    assert by_id[13]["navigationInfo"]["parent"] == "12"  # stepping out of the subworkflow
    assert by_id[15]["stepEntryMetadata"] == {"progressNumber": "1", "progressType": "PROGRESS_TYPE_RETRY"}
    assert json.loads(by_id[17]["exception"]["payload"]) == {"why": "nope"}
    assert by_id[23]["stepEntryMetadata"]["threadId"] == "2"
    assert by_id[24]["stepEntryMetadata"] == {"threadId": "2"}
    assert all(moment(e["createTime"]) <= moment(e["updateTime"]) for e in entries)


def test_a_waiting_step_is_in_progress_and_a_cancelled_execution_ends_it_cancelled(engine: Any) -> None:
    workflow = engine.deploy(
        """
- make:
    call: events.create_callback_endpoint
    result: cb
- wait:
    call: events.await_callback
    args:
      callback: ${cb}
"""
    )
    execution = engine.execute(workflow)
    engine.wait_for_callback(execution.name, waiters=1)
    running = all_entries(engine, execution.name)
    assert [(e["step"], e["stepType"], e["state"]) for e in running] == [
        ("make", "STEP_STD_LIB_CALL", "STATE_SUCCEEDED"),
        ("wait", "STEP_STD_LIB_CALL", "STATE_IN_PROGRESS"),
    ]
    assert running[1]["createTime"] == running[1]["updateTime"]
    engine.executions.cancel_execution(name=execution.name)
    cancelled = all_entries(engine, execution.name)
    assert cancelled[1]["state"] == "STATE_CANCELLED"
    assert step_entries(engine, execution.name).json()["totalSize"] == 2


def test_pages_skip_filter_and_order(engine: Any) -> None:
    name = finished(
        engine,
        """
- loop:
    for:
      value: v
      range: [1, 10]
      steps:
        - check:
            switch:
              - condition: ${v == 7}
                raise: seven
    # never reached past 7
- after:
    return: 0
""",
    )
    everything = all_entries(engine, name)
    assert len(everything) == 1 + 7 * 2 + 1 + 1  # for, 7 x (iteration, switch), the condition, its raise
    pages: list[dict[str, Any]] = []
    token = ""
    while True:
        body = step_entries(engine, name, pageSize=4, pageToken=token).json()
        assert body["totalSize"] == len(everything)
        pages.extend(body["stepEntries"])
        token = body.get("nextPageToken", "")
        if not token:
            break
    assert pages == everything
    skipped = step_entries(engine, name, pageSize=3, skip=2).json()
    assert [e["entryId"] for e in skipped["stepEntries"]] == ["3", "4", "5"]
    failed = all_entries(engine, name, filter='state="FAILED" AND stepType="STEP_RAISE"')
    assert [(e["step"], json.loads(e["exception"]["payload"])) for e in failed] == [("check", "seven")]
    children = all_entries(engine, name, filter="parent=1 AND entryId>10")
    assert [e["stepEntryMetadata"]["progressNumber"] for e in children] == ["6", "7"]
    newest_first = all_entries(engine, name, orderBy="entryId desc")
    assert [e["entryId"] for e in newest_first] == [e["entryId"] for e in reversed(everything)]
    by_step = all_entries(engine, name, orderBy="step, entryId desc", pageSize=1000)
    assert [e["step"] for e in by_step][:8] == ["check"] * 8
    for bad in ({"pageSize": "x"}, {"skip": -1}, {"filter": "colour=red"}, {"orderBy": "colour"}):
        response = step_entries(engine, name, **bad)
        assert response.status_code == 400, bad
        assert response.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_get_answers_one_entry_and_404_for_what_is_not_there(engine: Any) -> None:
    name = finished(engine, "- only:\n    return: 1\n")
    auth = {"Authorization": f"Bearer {engine.token()}"}
    response = requests.get(f"{engine.http}/v1/{name}/stepEntries/1", headers=auth, timeout=10)
    assert response.status_code == 200
    assert response.json()["stepType"] == "STEP_RETURN"
    assert response.json()["entryId"] == "1"
    for missing in (f"{name}/stepEntries/2", f"{name}/stepEntries/x", f"{name}-gone/stepEntries/1"):
        response = requests.get(f"{engine.http}/v1/{missing}", headers=auth, timeout=10)
        assert response.status_code == 404, missing
        assert response.json()["error"]["status"] == "NOT_FOUND"
    assert step_entries(engine, name + "-gone").status_code == 404


def test_step_entries_need_an_access_token_with_the_cloud_platform_scope(engine: Any) -> None:
    name = finished(engine, "- only:\n    return: 1\n")
    anonymous = requests.get(f"{engine.http}/v1/{name}/stepEntries", timeout=10)
    assert anonymous.status_code == 401
    narrow = engine.token(("https://www.googleapis.com/auth/pubsub",))
    assert step_entries(engine, name, token=narrow).status_code == 403


def test_the_billable_steps_are_the_same_with_entries_recorded(engine: Any) -> None:
    name = finished(engine, EVERY_KIND)
    admin = requests.get(f"{engine.http}/admin/executions/{name.rsplit('/', 1)[1]}", timeout=10).json()
    # init, loop, 2 x add, pick (its inline assign is part of it), guarded's 2 attempts of the call
    # with boom each, the predicate's return, note, fan, one, two, done
    assert admin["billableSteps"]["total"] == 15


def test_the_index_says_what_the_port_serves_and_lists_recent_executions(engine: Any) -> None:
    workflow = engine.deploy("- wait:\n    call: sys.sleep\n    args:\n      seconds: 30\n")
    execution = engine.execute(workflow)

    def listed() -> dict[str, Any]:
        page = requests.get(f"{engine.http}/", timeout=10).json()
        assert page["recentExecutions"][0]["currentStep"] == {"routine": "main", "step": "wait"}
        return dict(page)

    page = eventually(listed, what="the index to show the sleeping execution")
    assert page["recentExecutions"][0]["name"] == execution.name
    assert page["recentExecutions"][0]["state"] == "ACTIVE"
    assert page["grpc"]["address"] == engine.service.address
    assert "stepEntries.list" in page["http"]
    browser = requests.get(f"{engine.http}/", headers={"Accept": "text/html"}, timeout=10)
    assert browser.headers["Content-Type"].startswith("text/html")
    assert execution.name in browser.text
    engine.executions.cancel_execution(name=execution.name)


def test_an_execution_keeps_only_its_newest_entries_past_the_cap() -> None:
    history = StepHistory(ManualClock(), max_entries=10)
    for n in range(25):
        history.open("main", f"s{n}", "STEP_ASSIGN", 0)
    assert len(history) <= 10
    assert history.get(1) is None
    newest = history.get(25)
    assert newest is not None and newest.step == "s24"


def test_a_detailed_history_records_variables_and_expected_iterations(engine: Any) -> None:
    source = """
main:
  params: [args]
  steps:
    - loop:
        for:
          value: v
          in: ${args.items}
          steps:
            - add:
                assign:
                  - seen: ${v}
    - done:
        return: ${args.items}
"""
    workflow = wf.Workflow(
        source_contents=source,
        execution_history_level=wf.ExecutionHistoryLevel.EXECUTION_HISTORY_DETAILED,
    )
    detailed = engine.workflows.create_workflow(
        parent=engine.parent, workflow=workflow, workflow_id="detailed-history"
    ).result(timeout=10)
    assert detailed.execution_history_level == wf.ExecutionHistoryLevel.EXECUTION_HISTORY_DETAILED
    execution = engine.execute(detailed, {"items": ["a", "b"]})
    engine.wait_until(execution.name)
    entries = all_entries(engine, execution.name)
    iterations = [e for e in entries if e["stepType"] == "STEP_FOR_ITERATION"]
    assert [e["stepEntryMetadata"]["expectedIteration"] for e in iterations] == ["2", "2"]
    adds = [e for e in entries if e["step"] == "add"]
    assert [e["variableData"]["variables"]["seen"] for e in adds] == ["a", "b"]
    assert adds[1]["variableData"]["variables"]["args"] == {"items": ["a", "b"]}
    basic = all_entries(engine, execution.name, view="EXECUTION_ENTRY_VIEW_BASIC")
    assert all("variableData" not in e for e in basic)

    plain = finished(engine, source, {"items": ["a"]})
    for entry in all_entries(engine, plain):
        assert "variableData" not in entry
        assert "expectedIteration" not in entry.get("stepEntryMetadata", {})


def test_parallel_iterations_run_in_threads_of_their_own_and_a_failing_one_fails(engine: Any) -> None:
    name = finished(
        engine,
        """
- fan:
    parallel:
      for:
        value: v
        in: [1, 2, 3]
        steps:
          - inner:
              parallel:
                branches:
                  - a:
                      steps:
                        - check:
                            switch:
                              - condition: ${v == 2}
                                raise: two
                  - b:
                      steps:
                        - fine:
                            assign:
                              - x: ${v}
""",
    )
    entries = all_entries(engine, name)
    assert entries[0]["stepType"] == "STEP_PARALLEL_FOR"
    assert entries[0]["state"] == "STATE_FAILED"
    assert "UnhandledBranchError" in json.loads(entries[0]["exception"]["payload"])["tags"]
    iterations = [e for e in entries if e["stepType"] == "STEP_FOR_ITERATION"]
    assert [e["stepEntryMetadata"]["progressType"] for e in iterations] == ["PROGRESS_TYPE_PARALLEL_FOR"] * 3
    assert sorted(e["stepEntryMetadata"]["threadId"] for e in iterations) == ["1", "2", "3"]
    assert {e["stepEntryMetadata"]["threadId"]: e["state"] for e in iterations}["2"] == "STATE_FAILED"
    fine = [e for e in entries if e["step"] == "fine"]
    assert sorted(e["stepEntryMetadata"]["threadId"] for e in fine) == ["1.2", "2.2", "3.2"]
    assert all(e["state"] == "STATE_SUCCEEDED" for e in fine)


def test_past_the_budget_the_oldest_finished_executions_lose_their_entries_first(engine: Any) -> None:
    engine.service.state.executions.retained_entries = 3
    workflow = engine.deploy("- a:\n    assign:\n      - x: 1\n- b:\n    return: ${x}\n")
    older = engine.execute(workflow)
    engine.wait_until(older.name)
    newer = engine.execute(workflow)
    engine.wait_until(newer.name)
    assert all_entries(engine, older.name) == []
    assert step_entries(engine, older.name).json()["totalSize"] == 0
    assert [e["step"] for e in all_entries(engine, newer.name)] == ["a", "b"]
