"""The saga's state budget (issue 15): the starter splits ``SAGA_STATE_BUDGET_BYTES`` over the outputs
the workflow keeps, the step executor fails an execute whose output is over its share, and the result
gets back the outputs the workflow kept once, beside the records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from saga_orchestrator.errors import FieldError, InvalidRequestError
from saga_orchestrator.executor import OUTPUT_TOO_LARGE, StepExecutor, output_bytes, parse_task
from saga_orchestrator.httpclient import HttpClient
from saga_orchestrator.refs import referenced_steps
from saga_orchestrator.result import merge_outputs, parse_result
from saga_orchestrator.settings import Settings
from saga_orchestrator.starter import SagaStarter
from saga_orchestrator.validation import validate_request

from tests.contract.cloud import StaticTokenSource
from tests.support.executor import NoSecrets
from tests.support.http import RecordingHttpServer, ScriptedResponse
from tests.unit.saga_orchestrator.test_saga_executor_and_starter import Recorder, event_data

DEPLOYMENT_ENV = Path(__file__).resolve().parents[3] / "deployment.env"


def executor(env: dict[str, str] | None = None) -> StepExecutor:
    return StepExecutor(
        Settings.from_env(env or {}), secrets=NoSecrets(), tokens=StaticTokenSource(), http=HttpClient()
    )


def task(server: RecordingHttpServer, action: str = "execute", **extra: Any) -> dict[str, Any]:
    return {
        "saga_id": "s1",
        "step_name": "report",
        "action": action,
        "call": {"url": server.url("/p"), "auth": "none", "max_attempts": 3},
        "callback_url": server.url("/cb"),
        "outputs": {},
        **extra,
    }


def answered(server: RecordingHttpServer, output: Any) -> None:
    server.script("/p", ScriptedResponse(200, json.dumps(output).encode()))


def reported(server: RecordingHttpServer) -> dict[str, Any]:
    [report] = server.requests_to("/cb")
    return dict(json.loads(report.body))


def test_the_default_budget_is_the_deployment_env_value():
    line = next(
        x for x in DEPLOYMENT_ENV.read_text().splitlines() if x.startswith("SAGA_STATE_BUDGET_BYTES=")
    )
    assert Settings.from_env({}).state_budget_bytes == int(line.split("=", 1)[1]) == 196608


def test_a_budget_out_of_bounds_is_named():
    with pytest.raises(InvalidRequestError) as caught:
        Settings.from_env({"SAGA_STATE_BUDGET_BYTES": "600000"})
    assert caught.value.errors == [
        FieldError(
            "SAGA_STATE_BUDGET_BYTES", "must be at most 262144 (half the Workflows memory limit of 512 KB)"
        )
    ]
    with pytest.raises(InvalidRequestError) as small:
        Settings.from_env({"SAGA_STATE_BUDGET_BYTES": "10"})
    assert small.value.errors == [FieldError("SAGA_STATE_BUDGET_BYTES", "must be at least 1024, got 10")]


def test_an_output_is_measured_as_compact_utf8_json():
    assert output_bytes({"a": [1, 2]}) == len(b'{"a":[1,2]}')
    assert output_bytes("é") == 4  # two quotes and two bytes
    assert output_bytes(None) == 4


def test_an_execute_output_over_its_share_is_a_business_failure_naming_the_budget(http_server):
    answered(http_server, {"blob": "x" * 200})
    reply = executor().handle(task(http_server, max_output_bytes=100), {})
    assert reply.status_code == 200  # final: another try would get the same output
    report = reported(http_server)
    assert (report["status"], report["output"], report["attempts"]) == ("failed", None, 1)
    assert report["error"]["kind"] == OUTPUT_TOO_LARGE == "output_too_large"
    assert report["error"]["status_code"] == 200
    assert report["error"]["message"] == (
        "the execute output of step report is 211 bytes, over its share of the saga state budget:"
        " 100 of SAGA_STATE_BUDGET_BYTES=196608 bytes"
    )
    assert len(http_server.requests_to("/p")) == 1


def test_an_execute_output_within_its_share_is_reported_whole(http_server):
    output = {"blob": "x" * 89}  # 100 bytes exactly
    answered(http_server, output)
    executor().handle(task(http_server, max_output_bytes=100), {})
    assert output_bytes(output) == 100
    assert reported(http_server)["output"] == output


def test_a_task_without_a_share_may_use_the_whole_budget(http_server):
    answered(http_server, {"blob": "x" * 1100})
    executor({"SAGA_STATE_BUDGET_BYTES": "1024"}).handle(task(http_server), {})
    assert "SAGA_STATE_BUDGET_BYTES=1024" in reported(http_server)["error"]["message"]


def test_a_compensation_over_its_share_still_succeeded_without_its_output(http_server):
    answered(http_server, {"blob": "x" * 200})
    executor().handle(task(http_server, "compensate", max_output_bytes=100), {})
    report = reported(http_server)
    assert (report["status"], report["output"], report["error"]) == ("succeeded", None, None)


def test_a_malformed_share_is_an_invalid_task():
    settings = Settings.from_env({})
    body = {"saga_id": "s1", "step_name": "a", "call": {"url": "http://localhost:1/"}}
    for bad in (-1, "100", True, 1.5):
        with pytest.raises(InvalidRequestError) as caught:
            parse_task({**body, "max_output_bytes": bad}, settings)
        assert [e.field for e in caught.value.errors] == ["max_output_bytes"]
    assert parse_task({**body, "max_output_bytes": None}, settings).max_output_bytes is None


def test_the_starter_splits_the_budget_over_every_output_the_workflow_keeps():
    recorder = Recorder()
    settings = Settings.from_env({"SAGA_STATE_BUDGET_BYTES": "90001"})
    starter = SagaStarter(settings, executions=recorder, publisher=recorder)
    request = {
        "saga_id": "t-1",
        "steps": [
            {"name": "a", "execute_url": "http://localhost:1/a", "compensate_url": "http://localhost:1/ua"},
            {
                "name": "b",
                "execute": {"url": "http://localhost:1/b", "headers": {"X-A": {"$ref": "steps.a.output.id"}}},
            },
        ],
    }
    assert starter.handle_event("m-1", event_data(request)).outcome == "started"
    steps = recorder.started[0].to_argument()["steps"]
    # a's execute and compensate, b's execute: three outputs kept, 30000 bytes each.
    assert [s["max_output_bytes"] for s in steps] == [30000, 30000]
    assert [(s["execute_refs"], s["compensate_refs"]) for s in steps] == [([], []), (["a"], [])]


def test_the_python_api_path_splits_the_configured_budget_too():
    settings = Settings.from_env({"SAGA_STATE_BUDGET_BYTES": "60000"})
    steps = [{"name": "a", "execute_url": "http://localhost:1/a", "compensate_url": "http://localhost:1/ua"}]
    request = validate_request({"saga_id": "t-2", "steps": steps}, settings)
    assert [s["max_output_bytes"] for s in request.to_argument()["steps"]] == [30000]


def test_the_references_of_a_call_are_found_at_any_depth_once_each():
    value = {
        "x": [{"$ref": "steps.b.output.id"}, {"deep": {"$ref": "steps.a.output"}}],
        "y": {"$ref": "steps.b.output.other"},
        "z": {"$ref": "not a reference"},
        "w": {"$ref": "steps.c.output", "other": 1},
    }
    assert referenced_steps(value) == ["a", "b"]
    assert referenced_steps({"plain": "text"}) == []


def completion(outputs: Any) -> dict[str, Any]:
    return {
        "saga_id": "s1",
        "status": "compensated",
        "execution": "projects/p/locations/l/workflows/w/executions/e",
        "steps": [
            {
                "name": "a",
                "status": "compensated",
                "execute": {"status": "succeeded", "attempts": 1, "error": None},
                "compensate": {"status": "succeeded", "attempts": 1, "output": None, "error": None},
            },
            {
                "name": "b",
                "status": "failed",
                "execute": {"status": "failed", "attempts": 1, "output": None, "error": {"kind": "business"}},
                "compensate": None,
            },
            {"name": "c", "status": "not_run", "execute": None, "compensate": None},
        ],
        "outputs": outputs,
    }


def test_completion_puts_each_kept_output_back_in_its_record():
    merged = merge_outputs(completion({"a": {"id": "A-1"}}))
    assert "outputs" not in merged
    assert [s["execute"] and s["execute"]["output"] for s in merged["steps"]] == [{"id": "A-1"}, None, None]
    result = parse_result(merged).to_dict()
    assert result["steps"][0]["execute"]["output"] == {"id": "A-1"}


def test_completion_leaves_a_body_without_kept_outputs_as_it_is():
    body = completion({})
    del body["outputs"]
    assert merge_outputs(body) == body
    assert merge_outputs(completion("junk"))["steps"] == body["steps"]
