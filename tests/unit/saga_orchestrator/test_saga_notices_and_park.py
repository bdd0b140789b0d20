"""Parked steps (``on_failure``/``park_seconds``), the decision-wait settings, stuck/parked notices and
the operator's retry round of the Idempotency-Key: the validator, the settings, the notice parser and
encoder, and the schemas under ``schemas/`` that document them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from saga_orchestrator.errors import FieldError, InvalidRequestError
from saga_orchestrator.events import NOTICE_TYPES, encode_notice, event_source
from saga_orchestrator.executor import parse_task
from saga_orchestrator.participant import idempotency_key
from saga_orchestrator.result import parse_notice, parse_result
from saga_orchestrator.settings import Settings
from saga_orchestrator.validation import validate_request

from tests.support.notices import EXECUTION, stuck_notice

SCHEMAS = Path(__file__).parents[3] / "schemas"
SOURCE = event_source("projects/local-project/locations/us-central1/workflows/saga-orchestrator")
SETTINGS = Settings.from_env({"SAGA_ALLOWED_HOSTS": "*.example.com"})
OK = "https://svc.example.com/op"
YEAR = 31536000
E = FieldError


def schema(name: str) -> jsonschema.Draft202012Validator:
    document = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(document)
    return jsonschema.Draft202012Validator(document)


def flat(name: str = "a", **extra: Any) -> dict[str, Any]:
    return {"name": name, "execute_url": OK, "compensate_url": OK, **extra}


def rich(name: str = "a", **extra: Any) -> dict[str, Any]:
    return {"name": name, "execute": {"url": OK}, "compensate": {"url": OK}, **extra}


def parked_notice(**changes: Any) -> dict[str, Any]:
    parked = {
        "notice": "parked",
        "step": "charge_card",
        "action": "execute",
        "verbs": ["retry", "compensate", "cancel"],
    }
    return stuck_notice(**{**parked, **changes})


def argument_step(request_data: dict[str, Any], settings: Settings = SETTINGS) -> dict[str, Any]:
    step: dict[str, Any] = validate_request(request_data, settings, message_id="m1").to_argument()["steps"][0]
    return step


def errors_of(request_data: dict[str, Any]) -> list[FieldError]:
    with pytest.raises(InvalidRequestError) as caught:
        validate_request(request_data, SETTINGS, message_id="m1")
    return list(caught.value.errors)


# --- validate_request: on_failure and park_seconds ---------------------------------------------------


@pytest.mark.parametrize("form", [flat, rich], ids=["flat", "rich"])
def test_a_step_compensates_on_failure_unless_it_says_otherwise(form):
    step = argument_step({"steps": [form()]})
    assert (step["on_failure"], step["park_seconds"]) == ("compensate", 0)
    step = argument_step({"steps": [form(on_failure="compensate")]})
    assert (step["on_failure"], step["park_seconds"]) == ("compensate", 0)


@pytest.mark.parametrize("form", [flat, rich], ids=["flat", "rich"])
def test_a_parked_step_without_park_seconds_waits_the_setting(form):
    assert SETTINGS.park_seconds == 86400
    step = argument_step({"steps": [form(on_failure="park")]})
    assert (step["on_failure"], step["park_seconds"]) == ("park", 86400)
    settings = Settings.from_env({"SAGA_ALLOWED_HOSTS": "*.example.com", "SAGA_PARK_SECONDS": "600"})
    assert argument_step({"steps": [form(on_failure="park")]}, settings)["park_seconds"] == 600


@pytest.mark.parametrize("form", [flat, rich], ids=["flat", "rich"])
@pytest.mark.parametrize("seconds", [1, 3600, YEAR])
def test_a_parked_step_keeps_its_park_seconds(form, seconds):
    step = argument_step({"steps": [form(on_failure="park", park_seconds=seconds)]})
    assert (step["on_failure"], step["park_seconds"]) == ("park", seconds)


def test_the_workflow_argument_carries_the_stuck_decision_wait():
    request = validate_request({"steps": [flat()]}, SETTINGS, message_id="m1")
    assert request.to_argument()["stuck_decision_seconds"] == 604800
    settings = Settings.from_env({"SAGA_ALLOWED_HOSTS": "*.example.com", "SAGA_STUCK_DECISION_SECONDS": "0"})
    request = validate_request({"steps": [flat()]}, settings, message_id="m1")
    assert json.loads(request.argument_json())["stuck_decision_seconds"] == 0


@pytest.mark.parametrize("form", [flat, rich], ids=["flat", "rich"])
def test_park_seconds_is_refused_without_park(form):
    assert errors_of({"steps": [form("a"), form("b", on_failure="compensate", park_seconds=60)]}) == [
        E("steps[1].park_seconds", "is allowed only with on_failure 'park'")
    ]
    assert errors_of({"steps": [form(park_seconds=60)]}) == [
        E("steps[0].park_seconds", "is allowed only with on_failure 'park'")
    ]


@pytest.mark.parametrize("form", [flat, rich], ids=["flat", "rich"])
@pytest.mark.parametrize("bad", ["later", "PARK", None, 1, ["park"], {"park": True}])
def test_a_bad_on_failure_is_named(form, bad):
    assert errors_of({"steps": [form(on_failure=bad)]}) == [
        E("steps[0].on_failure", "must be 'compensate' or 'park'")
    ]


@pytest.mark.parametrize("form", [flat, rich], ids=["flat", "rich"])
@pytest.mark.parametrize("bad", [0, -1, YEAR + 1, 1.5, 60.0, "60", True, None])
def test_an_out_of_range_park_seconds_is_named(form, bad):
    assert errors_of({"steps": [form("a"), form("b", on_failure="park", park_seconds=bad)]}) == [
        E("steps[1].park_seconds", f"must be an integer from 1 to {YEAR}")
    ]


def test_every_bad_step_option_is_named_at_once():
    request = {
        "steps": [
            flat("a", on_failure="later"),
            rich("b", on_failure="park", park_seconds=0),
            rich("c", park_seconds=5),
        ]
    }
    assert errors_of(request) == [
        E("steps[0].on_failure", "must be 'compensate' or 'park'"),
        E("steps[1].park_seconds", f"must be an integer from 1 to {YEAR}"),
        E("steps[2].park_seconds", "is allowed only with on_failure 'park'"),
    ]


# --- settings -----------------------------------------------------------------------------------------


def test_the_decision_waits_default_to_a_week_and_a_day():
    settings = Settings.from_env({})
    assert (settings.stuck_decision_seconds, settings.park_seconds) == (604800, 86400)


def test_the_decision_waits_come_from_the_environment_and_stuck_may_be_zero():
    settings = Settings.from_env({"SAGA_STUCK_DECISION_SECONDS": "0", "SAGA_PARK_SECONDS": str(YEAR)})
    assert (settings.stuck_decision_seconds, settings.park_seconds) == (0, YEAR)
    settings = Settings.from_env({"SAGA_STUCK_DECISION_SECONDS": str(YEAR), "SAGA_PARK_SECONDS": "1"})
    assert (settings.stuck_decision_seconds, settings.park_seconds) == (YEAR, 1)


def test_decision_waits_over_a_year_are_refused():
    with pytest.raises(InvalidRequestError) as caught:
        Settings.from_env({"SAGA_STUCK_DECISION_SECONDS": str(YEAR + 1), "SAGA_PARK_SECONDS": str(YEAR + 1)})
    assert [e.field for e in caught.value.errors] == ["SAGA_STUCK_DECISION_SECONDS", "SAGA_PARK_SECONDS"]
    assert all(str(YEAR) in e.message for e in caught.value.errors)


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"SAGA_STUCK_DECISION_SECONDS": "a week"}, "SAGA_STUCK_DECISION_SECONDS"),
        ({"SAGA_STUCK_DECISION_SECONDS": "1.5"}, "SAGA_STUCK_DECISION_SECONDS"),
        ({"SAGA_STUCK_DECISION_SECONDS": "-1"}, "SAGA_STUCK_DECISION_SECONDS"),
        ({"SAGA_PARK_SECONDS": "soon"}, "SAGA_PARK_SECONDS"),
        ({"SAGA_PARK_SECONDS": "0"}, "SAGA_PARK_SECONDS"),
        ({"SAGA_PARK_SECONDS": "-5"}, "SAGA_PARK_SECONDS"),
    ],
)
def test_malformed_decision_waits_are_named(env, field):
    with pytest.raises(InvalidRequestError) as caught:
        Settings.from_env(env)
    assert [e.field for e in caught.value.errors] == [field]


# --- parse_notice / encode_notice ---------------------------------------------------------------------


@pytest.mark.parametrize("body", [stuck_notice(), parked_notice()], ids=["stuck", "parked"])
def test_a_notice_round_trips_and_its_event_validates_against_the_notice_schema(body):
    notice = parse_notice(body)
    message = encode_notice(notice, source=SOURCE)
    data = json.loads(message.data)
    assert data == body
    assert not list(schema("saga-notice.schema.json").iter_errors(body))
    assert not list(schema("saga-notice.schema.json").iter_errors(data))


def test_a_notice_without_the_optional_fields_is_published_with_their_defaults():
    body = stuck_notice(error=None, until=None)
    del body["at"], body["metadata"]
    data = json.loads(encode_notice(parse_notice(body), source=SOURCE).data)
    assert data == {**body, "at": None, "metadata": {}}
    assert not list(schema("saga-notice.schema.json").iter_errors(data))


def test_a_notice_is_a_binary_mode_cloudevent_per_kind_with_a_deterministic_id():
    stuck = encode_notice(parse_notice(stuck_notice()), source=SOURCE)
    assert stuck.attributes == {
        "ce-specversion": "1.0",
        "ce-type": "dev.sagaorchestrator.saga.v1.stuck",
        "ce-source": SOURCE,
        "ce-id": stuck.attributes["ce-id"],
        "ce-time": "2026-12-06T10:00:00.000Z",
        "ce-subject": "trip-42",
        "content-type": "application/json",
    }
    assert len(stuck.attributes["ce-id"]) == 32
    parked = encode_notice(parse_notice(parked_notice()), source=SOURCE)
    assert parked.attributes["ce-type"] == "dev.sagaorchestrator.saga.v1.parked"
    assert parked.attributes["ce-subject"] == "trip-42"
    assert NOTICE_TYPES == {
        "stuck": "dev.sagaorchestrator.saga.v1.stuck",
        "parked": "dev.sagaorchestrator.saga.v1.parked",
    }
    # The same notice again (a retried POST, even sent later) keeps its id; the next one gets another.
    again = encode_notice(parse_notice(stuck_notice(at="2026-12-06T10:00:05.000Z")), source=SOURCE)
    second = encode_notice(parse_notice(stuck_notice(sequence=2)), source=SOURCE)
    other_run = encode_notice(parse_notice(stuck_notice(execution=EXECUTION + "0")), source=SOURCE)
    ids = {m.attributes["ce-id"] for m in (stuck, parked, second, other_run)}
    assert again.attributes["ce-id"] == stuck.attributes["ce-id"]
    assert len(ids) == 4


def test_a_notice_without_at_is_stamped_now():
    message = encode_notice(parse_notice(stuck_notice(at=None)), source=SOURCE)
    assert message.attributes["ce-time"].startswith("20")
    assert json.loads(message.data)["at"] is None


def test_a_bad_notice_names_every_bad_field():
    body = {
        "notice": "late",
        "saga_id": "",
        "execution": 7,
        "action": None,
        "error": "boom",
        "verbs": ["retry", 1],
        "until": 5,
        "sequence": 0,
        "at": [],
        "metadata": "m",
    }
    with pytest.raises(InvalidRequestError) as caught:
        parse_notice(body)
    assert {e.field for e in caught.value.errors} == {
        "notice",
        "saga_id",
        "execution",
        "step",
        "action",
        "error",
        "verbs",
        "until",
        "sequence",
        "at",
        "metadata",
    }
    assert list(schema("saga-notice.schema.json").iter_errors(body))


@pytest.mark.parametrize("bad", [True, 1.0, "1", -3, None])
def test_a_notice_sequence_is_a_positive_integer(bad):
    with pytest.raises(InvalidRequestError) as caught:
        parse_notice(stuck_notice(sequence=bad))
    assert caught.value.errors == [E("sequence", "must be a positive integer")]


@pytest.mark.parametrize("bad", [None, "retry", [["retry"]]])
def test_notice_verbs_are_a_list_of_strings(bad):
    with pytest.raises(InvalidRequestError) as caught:
        parse_notice(stuck_notice(verbs=bad))
    assert caught.value.errors == [E("verbs", "must be a list of cancel, retry, skip, compensate")]


def test_a_notice_that_is_not_an_object_is_refused():
    with pytest.raises(InvalidRequestError) as caught:
        parse_notice(["stuck"])
    assert caught.value.errors == [E("", "a notice must be a JSON object")]


def test_a_notice_action_other_than_execute_or_compensate_is_refused():
    assert list(schema("saga-notice.schema.json").iter_errors(stuck_notice(action="undo")))
    with pytest.raises(InvalidRequestError):
        parse_notice(stuck_notice(action="undo"))


def test_a_notice_verb_outside_the_operator_verbs_is_refused():
    assert list(schema("saga-notice.schema.json").iter_errors(stuck_notice(verbs=["terminate"])))
    with pytest.raises(InvalidRequestError):
        parse_notice(stuck_notice(verbs=["terminate"]))


def test_the_notice_schema_refuses_what_the_workflow_never_sends():
    validator = schema("saga-notice.schema.json")
    bad = [
        stuck_notice(notice="done"),
        stuck_notice(action="execute"),  # stuck waits on a compensation
        parked_notice(action="compensate"),  # parked waits on an execute
        stuck_notice(verbs=["retry", "terminate"]),
        stuck_notice(sequence=0),
        stuck_notice(sequence=1.5),
        stuck_notice(error="boom"),
        stuck_notice(until=3),
        stuck_notice(metadata=None),
        {k: v for k, v in stuck_notice().items() if k != "verbs"},
    ]
    for body in bad:
        assert list(validator.iter_errors(body)), body


# --- schemas: request options and the v2 result's audit ------------------------------------------------


def test_the_request_schema_accepts_the_step_options_in_both_forms():
    validator = schema("saga-request.schema.json")
    good = [
        {"steps": [flat(on_failure="compensate"), rich("b", on_failure="park")]},
        {"steps": [flat(on_failure="park", park_seconds=1), rich("b", on_failure="park", park_seconds=YEAR)]},
    ]
    for request in good:
        assert not list(validator.iter_errors(request)), request
        validate_request(request, SETTINGS, message_id="m1")


def test_the_request_schema_rejects_the_step_options_the_validator_rejects():
    validator = schema("saga-request.schema.json")
    bad = [
        {"steps": [flat(on_failure="later")]},
        {"steps": [rich(on_failure="later")]},
        {"steps": [flat(on_failure="park", park_seconds=0)]},
        {"steps": [rich(on_failure="park", park_seconds=YEAR + 1)]},
        {"steps": [rich(on_failure="park", park_seconds=1.5)]},
        {"steps": [rich(on_failure="park", park_seconds="60")]},
        {"steps": [flat(park_seconds=60)]},
        {"steps": [rich(on_failure="compensate", park_seconds=60)]},
    ]
    for request in bad:
        assert list(validator.iter_errors(request)), request
        with pytest.raises(InvalidRequestError):
            validate_request(request, SETTINGS, message_id="m1")


def decided_result() -> dict[str, Any]:
    """A compensated saga: a parked step given up by an operator, an earlier compensation retried after
    it got stuck, another skipped by hand, and a cancel that came meanwhile."""
    record = {"by": "ops@example.com", "at": "2026-12-06T10:00:00Z"}
    return {
        "saga_id": "trip-42",
        "status": "compensated",
        "cause": "step_failed",
        "error": None,
        "execution": EXECUTION,
        "failed_step": "charge_card",
        "reason": "charge_card failed: declined; compensated by ops@example.com: customer asked",
        "uncompensated_steps": [],
        "audit": [
            {"verb": "retry", "step": "charge_card", "reason": "card updated", **record},
            {"verb": "compensate", "step": "charge_card", "reason": "customer asked", **record},
            {"verb": "retry", "step": "reserve_hotel", "reason": "hotel back up", **record},
            {"verb": "skip", "step": "book_flight", "reason": "refunded by phone", **record},
            {"verb": "cancel", "step": None, "reason": "customer left", **record},
        ],
        "steps": [
            {
                "name": "book_flight",
                "status": "compensated",
                "execute": {"status": "succeeded", "attempts": 1, "output": {"pnr": "X1"}, "error": None},
                "compensate": {
                    "status": "skipped",
                    "attempts": 10,
                    "error": {"kind": "exhausted", "status_code": 503, "message": "unavailable"},
                },
            },
            {
                "name": "reserve_hotel",
                "status": "compensated",
                "execute": {"status": "succeeded", "attempts": 1, "output": None, "error": None},
                "compensate": {"status": "succeeded", "attempts": 2, "error": None},
            },
            {
                "name": "charge_card",
                "status": "failed",
                "execute": {
                    "status": "failed",
                    "attempts": 1,
                    "error": {"kind": "business", "status_code": 402, "message": "declined"},
                },
                "compensate": None,
            },
        ],
    }


def test_a_result_with_every_operator_verb_and_a_skipped_compensation_is_valid():
    body = decided_result()
    assert not list(schema("saga-result.v2.schema.json").iter_errors(body))
    assert not list(schema("saga-result.schema.json").iter_errors(body)), "v2 results stay valid v1"
    data = parse_result(body).to_dict()
    assert data["audit"] == body["audit"]
    assert data["steps"][0]["compensate"]["status"] == "skipped"
    assert not list(schema("saga-result.v2.schema.json").iter_errors(data))


def test_the_v2_schema_refuses_unknown_verbs_and_a_cancel_naming_a_step():
    validator = schema("saga-result.v2.schema.json")
    for entry in (
        {"verb": "terminate", "step": None},
        {"verb": "cancel", "step": "charge_card"},
        {"verb": "Retry", "step": "charge_card"},
    ):
        body = {**decided_result(), "audit": [entry]}
        assert list(validator.iter_errors(body)), entry


# --- the Idempotency-Key's round and the task's key_round ---------------------------------------------


def test_the_idempotency_key_is_unchanged_until_an_operator_retries_a_refused_action():
    assert idempotency_key("trip-42", "charge_card", "execute") == "trip-42:charge_card:execute"
    assert idempotency_key("trip-42", "charge_card", "execute", 0) == "trip-42:charge_card:execute"
    assert idempotency_key("trip-42", "charge_card", "execute", 2) == "trip-42:charge_card:execute:2"
    assert idempotency_key("trip-42", "charge_card", "compensate", 1).endswith(":compensate:1")


TASK = {"saga_id": "s1", "step_name": "a", "call": {"url": "http://localhost:1/"}}


def test_a_task_reads_its_key_round():
    settings = Settings.from_env({})
    assert parse_task(TASK, settings).key_round == 0
    assert parse_task({**TASK, "key_round": None}, settings).key_round == 0
    assert parse_task({**TASK, "key_round": 0}, settings).key_round == 0
    assert parse_task({**TASK, "key_round": 3}, settings).key_round == 3


@pytest.mark.parametrize("bad", [-1, True, False, 1.0, 1.5, "2", [2]])
def test_a_malformed_key_round_is_an_invalid_task(bad):
    with pytest.raises(InvalidRequestError) as caught:
        parse_task({**TASK, "key_round": bad}, Settings.from_env({}))
    assert caught.value.errors == [E("key_round", "must be a non-negative integer")]
