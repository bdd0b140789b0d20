from __future__ import annotations

import json
from typing import Any

import pytest
from saga_orchestrator.errors import FieldError, InvalidRequestError
from saga_orchestrator.model import derive_saga_id
from saga_orchestrator.settings import Settings
from saga_orchestrator.validation import decode_request, validate_request

SETTINGS = Settings.from_env(
    {
        "SAGA_ALLOWED_HOSTS": "127.0.0.1,localhost,*.example.com,api.partner.io:8443",
        "GCE_METADATA_HOST": "127.0.0.1:8089",
        "SAGA_MAX_STEPS": "3",
    }
)
OK = "https://svc.example.com/op"


def flat(name: str = "a", **extra: Any) -> dict[str, Any]:
    return {"name": name, "execute_url": OK, **extra}


def rich(name: str = "a", **action: Any) -> dict[str, Any]:
    return {"name": name, "execute": {"url": OK, **action}}


E = FieldError

BAD_REQUESTS: list[tuple[str, Any, list[FieldError]]] = [
    ("not an object", ["steps"], [E("", "the request must be a JSON object")]),
    ("no steps", {}, [E("steps", "is required: a non-empty list")]),
    ("empty steps", {"steps": []}, [E("steps", "is required: a non-empty list")]),
    (
        "too many steps",
        {"steps": [flat("a"), flat("b"), flat("c"), flat("d")]},
        [E("steps", "has 4 steps; at most 3 are allowed (SAGA_MAX_STEPS)")],
    ),
    (
        "duplicate and malformed step names",
        {"steps": [flat("a"), flat("a"), flat("b c")]},
        [
            E("steps[1].name", "duplicates the name of steps[0]"),
            E("steps[2].name", "is required: 1-63 letters, digits, '_' or '-'"),
        ],
    ),
    ("step not an object", {"steps": ["a"]}, [E("steps[0]", "must be an object")]),
    ("flat step without url", {"steps": [{"name": "a"}]}, [E("steps[0].execute", "is required")]),
    (
        "flat compensate payload without url",
        {"steps": [flat(compensate_payload={})]},
        [E("steps[0].compensate_url", "is required and must be a string")],
    ),
    (
        "mixed forms",
        {"steps": [{"name": "a", "execute_url": OK, "execute": {"url": OK}}]},
        [E("steps[0]", "mixes the flat form (execute_url, ...) and the rich form (execute, ...)")],
    ),
    (
        "scheme not http",
        {"steps": [{"name": "a", "execute_url": "ftp://svc.example.com/x"}]},
        [E("steps[0].execute_url", "scheme must be http or https, got 'ftp'")],
    ),
    (
        "host not on the allowlist",
        {
            "steps": [
                {"name": "a", "execute_url": "https://evil.test/x", "compensate_url": "https://example.com/"}
            ]
        },
        [
            E("steps[0].execute_url", "host 'evil.test' is not on the allowlist (SAGA_ALLOWED_HOSTS)"),
            E("steps[0].compensate_url", "host 'example.com' is not on the allowlist (SAGA_ALLOWED_HOSTS)"),
        ],
    ),
    (
        "port must match a host:port entry",
        {"steps": [{"name": "a", "execute_url": "https://api.partner.io/x"}]},
        [E("steps[0].execute_url", "host 'api.partner.io' is not on the allowlist (SAGA_ALLOWED_HOSTS)")],
    ),
    (
        "metadata server and link-local are refused",
        {
            "steps": [
                rich("a", url="http://metadata.google.internal/computeMetadata/v1/"),
                rich("b", url="http://169.254.169.254/"),
                rich("c", url="http://127.0.0.1:8089/computeMetadata/v1/"),
            ]
        },
        [
            E(
                "steps[0].execute.url",
                "host 'metadata.google.internal' is the metadata server or link-local and is never called",
            ),
            E(
                "steps[1].execute.url",
                "host '169.254.169.254' is the metadata server or link-local and is never called",
            ),
            E(
                "steps[2].execute.url",
                "host '127.0.0.1' is the metadata server or link-local and is never called",
            ),
        ],
    ),
    (
        "credentials in the url",
        {"steps": [rich(url="https://user:pw@svc.example.com/")]},
        [E("steps[0].execute.url", "must not carry credentials")],
    ),
    (
        "bad secrets",
        {
            "steps": [
                rich(
                    secret_headers={
                        "X-Api-Key": {"secret": "bad/name", "version": "0"},
                        "X-Other": "ok-name",
                        "X-Third": 7,
                    }
                )
            ]
        },
        [
            E(
                "steps[0].execute.secret_headers.X-Api-Key.secret",
                "must be 1-255 letters, digits, '_' or '-'",
            ),
            E("steps[0].execute.secret_headers.X-Api-Key.version", "must be 'latest' or a positive integer"),
            E("steps[0].execute.secret_headers.X-Third", "must be a secret name or {secret, version}"),
        ],
    ),
    (
        "retry and timeout out of bounds",
        {
            "steps": [
                {
                    "name": "a",
                    "execute": {"url": OK, "retry": {"max_attempts": 0}, "timeout_seconds": 0},
                    "compensate": {"url": OK, "retry": {"max_attempts": 21}, "timeout_seconds": 101},
                }
            ]
        },
        [
            E("steps[0].execute.timeout_seconds", "must be a number from 1 to 100"),
            E("steps[0].execute.retry.max_attempts", "must be an integer from 1 to 20"),
            E("steps[0].compensate.timeout_seconds", "must be a number from 1 to 100"),
            E("steps[0].compensate.retry.max_attempts", "must be an integer from 1 to 20"),
        ],
    ),
    (
        "backoff is the queue's",
        {"steps": [rich(retry={"max_attempts": 3, "backoff": 2})]},
        [E("steps[0].execute.retry.backoff", "is not a known field (backoff is the task queue's)")],
    ),
    (
        "refs must name an earlier step",
        {
            "steps": [
                rich("a", payload={"x": {"$ref": "steps.b.output.id"}}),
                {
                    "name": "b",
                    "execute": {"url": OK, "payload": [{"$ref": "steps.b.output"}, {"$ref": "step.a"}]},
                    "compensate": {"url": OK, "payload": {"id": {"$ref": "steps.b.output.id"}}},
                },
            ]
        },
        [
            E(
                "steps[0].execute.payload.x",
                "$ref 'steps.b.output.id' names step 'b', which does not run before this call",
            ),
            E(
                "steps[1].execute.payload[0]",
                "$ref 'steps.b.output' names step 'b', which does not run before this call",
            ),
            E("steps[1].execute.payload[1]", "$ref 'step.a' must look like steps.<name>.output[.<key>...]"),
        ],
    ),
    (
        "reserved and malformed headers",
        {
            "steps": [
                rich(headers={"Authorization": "Bearer x", "Bad Header": "v", "X-N": 5, "X-Ok": "a\r\nb"})
            ]
        },
        [
            E(
                "steps[0].execute.headers.Authorization",
                "is set by the step executor and may not be supplied",
            ),
            E("steps[0].execute.headers.Bad Header", "is not a valid header name"),
            E("steps[0].execute.headers.X-N", "must be a string or a $ref"),
            E("steps[0].execute.headers.X-Ok", "must not contain line breaks"),
        ],
    ),
    (
        "method and auth",
        {"steps": [rich(method="TRACE", auth="basic")]},
        [
            E("steps[0].execute.method", "must be one of POST, PUT, PATCH, DELETE, GET"),
            E("steps[0].execute.auth", "must be 'oidc' or 'none'"),
        ],
    ),
    (
        "every top-level problem at once",
        {"saga_id": "Trip 42", "deadline_seconds": 0, "metadata": [], "steps": [flat()], "priority": 1},
        [
            E("priority", "is not a known field"),
            E("saga_id", "must be 1-63 lowercase letters, digits, '_' or '-' (a Workflows label value)"),
            E("deadline_seconds", "must be an integer from 1 to 31536000"),
            E("metadata", "must be an object"),
        ],
    ),
    (
        "argument over 32 KB",
        {"steps": [flat()], "metadata": {"blob": "x" * 33000}},
        [E("", "the normalized request is 33542 bytes; the Workflows argument limit is 32768")],
    ),
]


@pytest.mark.parametrize(
    ("request_data", "expected"), [c[1:] for c in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_requests_are_rejected_with_every_problem_named(request_data, expected):
    with pytest.raises(InvalidRequestError) as caught:
        validate_request(request_data, SETTINGS, message_id="m1")
    assert caught.value.errors == expected


def test_invalid_request_error_is_a_value_error_with_a_readable_message():
    with pytest.raises(ValueError, match=r"steps: is required"):
        validate_request({}, SETTINGS)


def test_the_seed_flat_form_normalizes_to_the_workflow_argument():
    request = validate_request(
        {
            "steps": [
                {
                    "name": "create_booking",
                    "execute_url": "https://booking.example.com/execute",
                    "execute_payload": {"action": "create"},
                    "compensate_url": "https://booking.example.com/compensate",
                    "compensate_payload": {"booking_id": {"$ref": "steps.create_booking.output.booking_id"}},
                }
            ]
        },
        SETTINGS,
        message_id="2070443601311540",
        requested_at="2026-11-25T22:00:00.000Z",
    )
    assert request.to_argument() == {
        "saga_id": derive_saga_id("2070443601311540"),
        "steps": [
            {
                "name": "create_booking",
                "execute": {
                    "url": "https://booking.example.com/execute",
                    "method": "POST",
                    "payload": {"action": "create"},
                    "headers": {},
                    "secret_headers": {},
                    "auth": "oidc",
                    "timeout_seconds": 30,
                    "max_attempts": 5,
                },
                "compensate": {
                    "url": "https://booking.example.com/compensate",
                    "method": "POST",
                    "payload": {"booking_id": {"$ref": "steps.create_booking.output.booking_id"}},
                    "headers": {},
                    "secret_headers": {},
                    "auth": "oidc",
                    "timeout_seconds": 30,
                    "max_attempts": 10,
                },
                "execute_wait_seconds": 318,
                "compensate_wait_seconds": 682,
                # The referenced outputs ride only in the compensation's task body; its share of the
                # default state budget (196608 bytes over one execute and one compensate output).
                "execute_refs": [],
                "compensate_refs": ["create_booking"],
                "max_output_bytes": 98304,
                "on_failure": "compensate",
                "park_seconds": 0,
            }
        ],
        "deadline_seconds": 86400,
        "stuck_decision_seconds": 604800,
        "metadata": {},
        "requested_at": "2026-11-25T22:00:00.000Z",
        "event_id": "2070443601311540",
    }
    assert json.loads(request.argument_json()) == request.to_argument()


def test_the_rich_form_keeps_its_options_and_secret_names_only():
    request = validate_request(
        {
            "saga_id": "trip-42",
            "deadline_seconds": 600,
            "metadata": {"order": 7},
            "steps": [
                {
                    "name": "charge",
                    "execute": {
                        "url": "https://api.partner.io:8443/charge",
                        "method": "put",
                        "payload": {"amount": 5},
                        "headers": {"X-Tenant": "t1"},
                        "secret_headers": {
                            "X-Api-Key": "payment-api-key",
                            "X-Sig": {"secret": "sig", "version": 3},
                        },
                        "auth": "none",
                        "timeout_seconds": 12.5,
                        "retry": {"max_attempts": 20},
                    },
                    "compensate": None,
                }
            ],
        },
        SETTINGS,
    )
    step = request.to_argument()["steps"][0]
    assert request.saga_id == "trip-42"
    assert step["execute"] == {
        "url": "https://api.partner.io:8443/charge",
        "method": "PUT",
        "payload": {"amount": 5},
        "headers": {"X-Tenant": "t1"},
        "secret_headers": {
            "X-Api-Key": {"secret": "payment-api-key", "version": "latest"},
            "X-Sig": {"secret": "sig", "version": "3"},
        },
        "auth": "none",
        "timeout_seconds": 12.5,
        "max_attempts": 20,
    }
    assert step["compensate"] is None
    # 20 × 32.5 s + backoff far beyond the 600 s deadline: the wait is capped by the deadline.
    assert step["execute_wait_seconds"] == 600
    assert step["compensate_wait_seconds"] == 0


def test_a_missing_saga_id_is_derived_from_the_message_id_so_redeliveries_dedupe():
    first = validate_request({"steps": [flat()]}, SETTINGS, message_id="123")
    again = validate_request({"steps": [flat()]}, SETTINGS, message_id="123")
    other = validate_request({"steps": [flat()]}, SETTINGS, message_id="124")
    assert first.saga_id == again.saga_id != other.saga_id
    assert first.saga_id.startswith("saga-") and len(first.saga_id) == 25


# --- bad input never escapes as anything but InvalidRequestError (issue 14) ------------------------------

DEEP = "steps[0].execute_payload" + "[0]" * 61


def raw_request(payload_json: str, **step: str) -> bytes:
    fields = {"name": '"a"', "execute_url": json.dumps(OK), "execute_payload": payload_json, **step}
    return ('{"steps": [{' + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}]}").encode()


RAW_REQUESTS: list[tuple[str, bytes, list[FieldError]]] = [
    (
        "a payload nested 1,000 levels deep",
        raw_request("[" * 1000 + "]" * 1000),
        [E(DEEP, "nests arrays and objects more than 64 levels deep")],
    ),
    (
        "a lone surrogate escaped in the url",
        raw_request(json.dumps("x"), execute_url='"https://svc.example.com/x/\\ud800"'),
        [
            E(
                "steps[0].execute_url",
                "is a string that is not Unicode text: a lone surrogate U+D800 at character 26",
            )
        ],
    ),
    (
        "a lone surrogate in a key",
        raw_request('{"\\udc00": 1}'),
        [
            E(
                "steps[0].execute_payload.\\udc00",
                "is a key that is not Unicode text: a lone surrogate U+DC00 at character 0",
            )
        ],
    ),
    (
        "NaN",
        raw_request("NaN"),
        [E("", "the message data is not JSON this service reads: NaN is not a JSON number")],
    ),
    (
        "an integer of 5,000 digits",
        raw_request("1" * 5000),
        [
            E(
                "",
                "the message data is not JSON this service reads: Exceeds the limit (4300 digits) for integer "
                "string conversion: value has 5000 digits; use sys.set_int_max_str_digits() to increase the limit",
            )
        ],
    ),
    (
        "an integer beyond 64 bits",
        raw_request(str(2**63)),
        [E("steps[0].execute_payload", "is an integer beyond 64 bits (Workflows integers)")],
    ),
    (
        "over 64 KiB",
        raw_request(json.dumps("x" * 70_000)),
        [
            E(
                "",
                "the message data is 70094 bytes; at most 65536 are read (the normalized request must fit "
                "the Workflows argument limit of 32768)",
            )
        ],
    ),
    ("not UTF-8", b'{"steps": "\xff"}', [E("", "the message data is not UTF-8 (invalid start byte)")]),
]


@pytest.mark.parametrize(("raw", "expected"), [c[1:] for c in RAW_REQUESTS], ids=[c[0] for c in RAW_REQUESTS])
def test_message_data_that_cannot_be_carried_is_rejected_naming_where(raw, expected):
    with pytest.raises(InvalidRequestError) as caught:
        validate_request(decode_request(raw), SETTINGS, message_id="m1")
    assert caught.value.errors == expected


NAME_RULE = "is required: 1-63 letters, digits, '_' or '-'"
TRAILING_NEWLINE: list[tuple[str, Any, list[FieldError]]] = [
    (
        "saga id",
        {"saga_id": "fz-1\n", "steps": [flat()]},
        [E("saga_id", "must be 1-63 lowercase letters, digits, '_' or '-' (a Workflows label value)")],
    ),
    ("step name", {"steps": [flat("a\n")]}, [E("steps[0].name", NAME_RULE)]),
    (
        "header name",
        {"steps": [rich(headers={"X-A\n": "v"})]},
        [E("steps[0].execute.headers.X-A\n", "is not a valid header name")],
    ),
    (
        "secret name and version",
        {"steps": [rich(secret_headers={"X-K": {"secret": "s\n", "version": "latest\n"}})]},
        [
            E("steps[0].execute.secret_headers.X-K.secret", "must be 1-255 letters, digits, '_' or '-'"),
            E("steps[0].execute.secret_headers.X-K.version", "must be 'latest' or a positive integer"),
        ],
    ),
    (
        "$ref",
        {"steps": [rich(payload={"id": {"$ref": "steps.a.output\n"}})]},
        [
            E(
                "steps[0].execute.payload.id",
                "$ref 'steps.a.output\\n' must look like steps.<name>.output[.<key>...]",
            )
        ],
    ),
]


@pytest.mark.parametrize(
    ("request_data", "expected"), [c[1:] for c in TRAILING_NEWLINE], ids=[c[0] for c in TRAILING_NEWLINE]
)
def test_a_trailing_newline_matches_no_pattern(request_data, expected):
    with pytest.raises(InvalidRequestError) as caught:
        validate_request(request_data, SETTINGS, message_id="m1")
    assert caught.value.errors == expected


def test_header_values_and_urls_hold_only_what_http_client_sends():
    data = {
        "steps": [
            rich(
                url="https://svc.example.com/a b",
                headers={"X-Nul": "a\x00b", "X-Uni": "café", "X-Tab": "a\tb"},
            )
        ]
    }
    with pytest.raises(InvalidRequestError) as caught:
        validate_request(data, SETTINGS)
    rule = "must be printable ASCII, spaces and tabs (no control characters)"
    assert caught.value.errors == [
        E("steps[0].execute.url", "must not contain spaces or control characters (percent-encode them)"),
        E("steps[0].execute.headers.X-Nul", rule),
        E("steps[0].execute.headers.X-Uni", rule),
    ]


def test_python_values_that_are_not_json_are_named():
    data = {"steps": [rich(payload={1: "x", "s": {1, 2}, "f": float("inf")})]}
    with pytest.raises(InvalidRequestError) as caught:
        validate_request(data, SETTINGS)
    assert caught.value.errors == [
        E("steps[0].execute.payload.1", "has a key of type int; object keys must be strings"),
        E("steps[0].execute.payload.s", "is a set, not a JSON value"),
        E("steps[0].execute.payload.f", "must be a finite number (NaN and Infinity are not JSON)"),
    ]


def test_a_deep_python_value_is_named_without_recursing():
    payload: Any = "leaf"
    for _ in range(100_000):
        payload = [payload]
    with pytest.raises(InvalidRequestError) as caught:
        validate_request({"steps": [rich(payload=payload)]}, SETTINGS)
    assert caught.value.errors == [
        E("steps[0].execute.payload" + "[0]" * 60, "nests arrays and objects more than 64 levels deep")
    ]


def test_at_most_a_hundred_problems_are_listed_and_the_rest_counted():
    data = {"steps": [flat()], **{f"k{n:03d}": n for n in range(150)}}
    with pytest.raises(InvalidRequestError) as caught:
        validate_request(data, SETTINGS)
    errors = caught.value.errors
    assert len(errors) == 101
    assert errors[0] == E("k000", "is not a known field")
    assert errors[-1] == E("", "50 more problems not listed")
