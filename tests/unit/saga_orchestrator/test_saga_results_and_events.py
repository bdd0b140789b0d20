from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from saga_orchestrator.errors import FieldError, InvalidRequestError
from saga_orchestrator.events import decode_result, encode_result, event_source
from saga_orchestrator.result import parse_result, rejected_result
from saga_orchestrator.settings import Settings
from saga_orchestrator.validation import validate_request

DATA = Path(__file__).parents[2] / "data"
SCHEMAS = Path(__file__).parents[3] / "schemas"
SOURCE = event_source("projects/local-project/locations/us-central1/workflows/saga-orchestrator")


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def schema(name: str) -> jsonschema.Draft202012Validator:
    document = json.loads((SCHEMAS / name).read_text())
    jsonschema.Draft202012Validator.check_schema(document)
    return jsonschema.Draft202012Validator(document)


V2_DEFAULTS: dict[str, Any] = {"cause": None, "error": None, "uncompensated_steps": [], "audit": []}


def test_a_completed_saga_is_a_binary_mode_cloudevent_with_a_deterministic_id():
    result = parse_result(load("completion-compensated.json"))
    message = encode_result(result, source=SOURCE)
    assert message.attributes == {
        "ce-specversion": "1.0",
        "ce-type": "dev.sagaorchestrator.saga.v1.compensated",
        "ce-source": "//workflows.googleapis.com/projects/local-project/locations/us-central1/workflows/saga-orchestrator",
        "ce-id": message.attributes["ce-id"],
        "ce-time": "2026-11-25T22:00:03.600Z",
        "ce-subject": "trip-42",
        "content-type": "application/json",
    }
    assert len(message.attributes["ce-id"]) == 32
    assert encode_result(parse_result(load("completion-compensated.json")), source=SOURCE) == message
    # A v1 body (no cause, error, uncompensated_steps, audit) is published as a v2 result.
    assert json.loads(message.data) == {**load("completion-compensated.json"), **V2_DEFAULTS}


def test_another_execution_of_the_same_saga_gets_another_event_id():
    body = load("completion-compensated.json")
    first = encode_result(parse_result(body), source=SOURCE)
    body["execution"] = body["execution"].replace("9b1f", "0000")
    assert encode_result(parse_result(body), source=SOURCE).attributes["ce-id"] != first.attributes["ce-id"]


def test_a_result_event_decodes_back_to_the_same_result():
    result = parse_result(load("completion-compensated.json"))
    message = encode_result(result, source=SOURCE)
    event = decode_result(message.data, message.attributes)
    assert event.result == result
    assert (event.type, event.subject, event.source) == (
        "dev.sagaorchestrator.saga.v1.compensated",
        "trip-42",
        SOURCE,
    )


def test_a_rejected_result_names_every_problem_and_its_id_follows_the_request_message():
    errors = [
        FieldError("steps[0].execute_url", "scheme must be http or https, got 'ftp'"),
        FieldError("saga_id", "bad"),
    ]
    result = rejected_result("saga-abc", errors, finished_at="2026-11-25T22:00:00.000Z", event_id="m-1")
    message = encode_result(result, source=SOURCE)
    assert message.attributes["ce-type"] == "dev.sagaorchestrator.saga.v1.rejected"
    data = json.loads(message.data)
    assert data["status"] == "rejected"
    assert data["errors"] == [e.to_dict() for e in errors]
    assert data["reason"] == "the saga request is invalid (2 problems)"
    again = encode_result(
        rejected_result("saga-abc", errors, finished_at="later", event_id="m-1"), source=SOURCE
    )
    other = encode_result(
        rejected_result("saga-abc", errors, finished_at="later", event_id="m-2"), source=SOURCE
    )
    assert again.attributes["ce-id"] == message.attributes["ce-id"] != other.attributes["ce-id"]
    assert decode_result(message.data, message.attributes).result.errors == tuple(errors)
    assert not list(schema("saga-result.schema.json").iter_errors(data))


def test_a_bad_completion_body_names_every_bad_field():
    with pytest.raises(InvalidRequestError) as caught:
        parse_result(
            {"status": "done", "steps": [{"name": "a", "status": "ok", "execute": {"attempts": -1}}]}
        )
    assert caught.value.errors == [
        FieldError("saga_id", "is required and must be a string"),
        FieldError("status", "must be one of succeeded, compensated, failed, rejected"),
        FieldError("execution", "is required: projects/P/locations/L/workflows/W/executions/E"),
        FieldError(
            "steps[0].status",
            "must be one of succeeded, failed, compensated, compensation_failed, unknown, not_run",
        ),
        FieldError("steps[0].execute.status", "is required and must be a string"),
        FieldError("steps[0].execute.attempts", "must be a non-negative integer or null (unknown)"),
    ]


def test_a_message_that_is_not_a_saga_result_event_is_refused():
    with pytest.raises(InvalidRequestError) as caught:
        decode_result(b"{}", {"ce-specversion": "0.3", "ce-type": "other"})
    assert [e.field for e in caught.value.errors] == [
        "ce-source",
        "ce-id",
        "ce-subject",
        "ce-specversion",
        "ce-type",
    ]


@pytest.mark.parametrize("name", ["saga-request-flat.json", "saga-request-rich.json"])
def test_request_examples_are_valid_for_the_schema_and_the_validator(name):
    example = load(name)
    assert not list(schema("saga-request.schema.json").iter_errors(example))
    validate_request(example, Settings.from_env({}), message_id="1")


def test_the_request_schema_rejects_what_the_validator_rejects():
    validator = schema("saga-request.schema.json")
    bad = [
        {"steps": []},
        {"saga_id": "Trip 42", "steps": [{"name": "a", "execute_url": "http://localhost/x"}]},
        {"steps": [{"name": "a", "execute_url": "ftp://localhost/x"}]},
        {"steps": [{"name": "a", "execute": {"url": "http://localhost/x", "auth": "basic"}}]},
        {
            "steps": [
                {"name": "a", "execute": {"url": "http://localhost/x", "secret_headers": {"K": "bad/name"}}}
            ]
        },
        {
            "steps": [
                {"name": "a", "execute_url": "http://localhost/x", "execute": {"url": "http://localhost/x"}}
            ]
        },
    ]
    for request in bad:
        assert list(validator.iter_errors(request)), request
        with pytest.raises(InvalidRequestError):
            validate_request(request, Settings.from_env({}))


def test_the_completion_example_is_valid_for_the_result_schema():
    assert not list(schema("saga-result.schema.json").iter_errors(load("completion-compensated.json")))
    assert list(
        schema("saga-result.schema.json").iter_errors(
            {"saga_id": "x", "status": "succeeded", "steps": [], "execution": "e"}
        )
    )


def test_an_unknown_outcome_has_null_attempts_and_stays_valid():
    result = parse_result(
        {
            "saga_id": "trip-7",
            "status": "compensated",
            "execution": "projects/p/locations/l/workflows/w/executions/e",
            "failed_step": "book",
            "reason": "no outcome from step book within 120 s",
            "steps": [
                {
                    "name": "book",
                    "status": "unknown",
                    "execute": {"status": "unknown", "attempts": None, "error": {"kind": "timeout"}},
                    "compensate": {"status": "succeeded", "attempts": 1},
                }
            ],
        }
    )
    data = result.to_dict()
    assert data["steps"][0]["execute"]["attempts"] is None
    assert not list(schema("saga-result.schema.json").iter_errors(data))


def failed_with_two_undos_left() -> dict[str, Any]:
    return {
        "saga_id": "trip-9",
        "status": "failed",
        "cause": "cancelled",
        "error": None,
        "execution": "projects/p/locations/l/workflows/w/executions/e",
        "failed_step": "reserve_hotel",
        "reason": "compensation of reserve_hotel failed: no such reservation",
        "uncompensated_steps": ["reserve_hotel", "book_flight"],
        "audit": [
            {
                "verb": "cancel",
                "step": None,
                "reason": "customer left",
                "by": "ops@x",
                "at": "2026-12-06T10:00:00Z",
            }
        ],
        "steps": [
            {"name": "book_flight", "status": "compensation_failed"},
            {"name": "reserve_hotel", "status": "compensation_failed"},
        ],
    }


def test_a_v2_result_keeps_cause_every_undone_step_and_the_audit_through_the_event():
    body = failed_with_two_undos_left()
    assert not list(schema("saga-result.v2.schema.json").iter_errors(body))
    assert not list(schema("saga-result.schema.json").iter_errors(body)), "v2 results stay valid v1"
    message = encode_result(parse_result(body), source=SOURCE)
    event = decode_result(message.data, message.attributes)
    assert event.type == "dev.sagaorchestrator.saga.v1.failed"
    assert event.result.cause == "cancelled"
    assert event.result.uncompensated_steps == ("reserve_hotel", "book_flight")
    assert [entry.to_dict() for entry in event.result.audit] == body["audit"]
    assert json.loads(message.data)["uncompensated_steps"] == ["reserve_hotel", "book_flight"]


def test_compensated_is_refused_when_an_undo_did_not_happen_and_bad_v2_fields_are_named():
    body = {
        **failed_with_two_undos_left(),
        "status": "compensated",
        "cause": "bored",
        "error": "boom",
        "audit": [{"step": None}],
    }
    with pytest.raises(InvalidRequestError) as raised:
        parse_result(body)
    named = {error.field for error in raised.value.errors}
    assert named == {"cause", "error", "uncompensated_steps", "audit[0].verb"}
    assert list(schema("saga-result.v2.schema.json").iter_errors(body))
