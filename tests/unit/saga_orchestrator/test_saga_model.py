from __future__ import annotations

from typing import Any

import pytest
from saga_orchestrator.errors import FieldError, InvalidRequestError
from saga_orchestrator.model import SAGA_ID_RE, ActionSpec, SecretRef, derive_saga_id
from saga_orchestrator.settings import Settings

SETTINGS = Settings.from_env({"SAGA_ALLOWED_HOSTS": "*.example.com", "SAGA_QUEUE_MAX_ATTEMPTS": "10"})
CALL: dict[str, Any] = {
    "url": "https://pay.example.com/charge",
    "method": "PUT",
    "payload": {"booking": {"$ref": "steps.book.output.id"}},
    "headers": {"X-Trace": "abc", "X-Booking": {"$ref": "steps.book.output.id"}},
    "secret_headers": {"X-Api-Key": {"secret": "pay-key", "version": "3"}},
    "auth": "none",
    "timeout_seconds": 12.5,
    "max_attempts": 4,
}
E = FieldError


def test_a_task_call_reads_back_into_the_action_it_was_written_from():
    spec = ActionSpec.from_dict(CALL, SETTINGS)
    assert spec.secret_headers == {"X-Api-Key": SecretRef("pay-key", "3")}
    assert spec.max_attempts == 4 and spec.timeout_seconds == 12.5 and spec.method == "PUT"
    assert spec.to_dict() == CALL


def test_a_call_without_attempts_or_timeout_gets_the_execute_defaults():
    spec = ActionSpec.from_dict({"url": "https://pay.example.com/charge"}, SETTINGS)
    assert spec.max_attempts == SETTINGS.default_execute_max_attempts
    assert spec.timeout_seconds == SETTINGS.default_step_timeout_seconds
    assert spec.payload == {} and spec.auth == "oidc"


def test_a_task_call_is_held_to_the_allowlist_and_every_bad_field_is_named():
    call = {
        **CALL,
        "url": "http://169.254.169.254/computeMetadata/v1/",
        "headers": {"Authorization": "Bearer stolen"},
        "payload": {"$ref": "outputs.book"},
        "max_attempts": 11,
        "retry": {"max_attempts": 2},
    }
    with pytest.raises(InvalidRequestError) as caught:
        ActionSpec.from_dict(call, SETTINGS)
    assert caught.value.errors == [
        E("call.retry", "is not a known field"),
        E("call.url", "host '169.254.169.254' is the metadata server or link-local and is never called"),
        E("call.payload", "$ref 'outputs.book' must look like steps.<name>.output[.<key>...]"),
        E("call.headers.Authorization", "is set by the step executor and may not be supplied"),
        E("call.max_attempts", "must be an integer from 1 to 10"),
    ]


def test_a_call_that_is_not_an_object_is_named_by_its_path():
    with pytest.raises(InvalidRequestError) as caught:
        ActionSpec.from_dict(["https://pay.example.com/charge"], SETTINGS, path="task")
    assert caught.value.errors == [E("task", "must be an object")]


def test_an_action_in_the_request_form_keeps_its_attempts_under_retry():
    raw = {"url": "https://pay.example.com/charge", "retry": {"max_attempts": 0}}
    with pytest.raises(InvalidRequestError) as caught:
        ActionSpec.from_dict(raw, SETTINGS, path="task", form="request")
    assert caught.value.errors == [E("task.retry.max_attempts", "must be an integer from 1 to 10")]
    raw["retry"] = {"max_attempts": 3}
    assert ActionSpec.from_dict(raw, SETTINGS, form="request").max_attempts == 3


def test_a_derived_saga_id_is_a_workflows_label_value():
    saga_id = derive_saga_id("2070443601311540")
    assert SAGA_ID_RE.match(saga_id) and saga_id.startswith("saga-") and len(saga_id) == 25
