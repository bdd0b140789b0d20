"""Properties of the door (issue 14): decoding and validation are total, and what they let in can be sent.

- Any message data (bytes, JSON text with escaped surrogates, deep nesting, huge strings) and any value
  (arbitrary JSON, Python values, valid requests with one field replaced) ends in a ``SagaRequest`` or an
  ``InvalidRequestError`` whose problems are publishable text; never in another exception.
- A request that validates becomes a workflow argument (UTF-8 JSON), task ``call`` objects that
  ``ActionSpec.from_dict`` reads back to the same action, and participant headers that
  ``http.client.HTTPConnection.putheader`` accepts.

Seeded (``derandomize``), bounded example counts and no example database, so the run is the same every
time and takes a few seconds.
"""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from saga_orchestrator.checks import RESERVED_HEADERS
from saga_orchestrator.errors import InvalidRequestError
from saga_orchestrator.model import ACTIONS, SAGA_ID_RE, ActionSpec, SagaRequest
from saga_orchestrator.participant import CallContext, prepare
from saga_orchestrator.validation import STEP_NAME_RE, decode_request, validate_request

from tests.unit.saga_orchestrator.test_saga_validation import SETTINGS

PROPERTY = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)

NASTY_TEXT = [
    "\ud800",
    "\udfff",
    "a\n",
    "\r\n",
    "\x00",
    "\x7f",
    "é",
    "\u2028",
    "\ufeff",
    "$ref",
    "steps.a.output",
]
chars = st.characters() | st.sampled_from("\ud800\udc00\n\r\t\x00\x1f\x7fé€😀")
texts = st.one_of(
    st.text(chars, max_size=12),
    st.sampled_from(NASTY_TEXT),
    st.integers(0, 70_000).map(lambda n: "x" * n),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    texts,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)


def nested(depth: int, kind: str) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value] if kind == "[" else {"k": value}
    return value


# Deep enough to pass the limit; shallow enough for the test's own json.dumps.
deep_values = st.builds(nested, st.integers(0, 300), st.sampled_from("[{"))
deep_texts = st.builds(
    lambda depth, kind: (kind * depth + "1" + ("]" if kind == "[" else "}") * depth).encode(),
    st.integers(0, 5000),
    st.sampled_from(["[", '{"k":']),
)

# --- valid requests, varied --------------------------------------------------------------------------

printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.just("\t"), max_size=30)
header_names = st.from_regex(r"[A-Za-z][!#$%&'*+.^_`|~0-9A-Za-z-]{0,20}", fullmatch=True).filter(
    lambda name: name.lower() not in RESERVED_HEADERS
)
payloads = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    # any Unicode text but lone surrogates, control characters included
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
urls = st.builds(
    lambda host, path: f"{host}{path}",
    st.sampled_from(["https://svc.example.com", "http://127.0.0.1:9001", "https://api.partner.io:8443"]),
    st.from_regex(r"/[A-Za-z0-9._~%/?=&-]{0,30}", fullmatch=True),
)


@st.composite
def actions(draw: st.DrawFn, earlier: list[str]) -> dict[str, Any]:
    headers: dict[str, Any] = draw(st.dictionaries(header_names, printable, max_size=3))
    with_ref: bool = draw(st.booleans())
    if earlier and with_ref:
        headers[draw(header_names)] = {"$ref": f"steps.{draw(st.sampled_from(earlier))}.output.id"}
    secrets = {
        name: draw(st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True))
        for name in draw(st.lists(header_names, max_size=2))
        if name.lower() not in {h.lower() for h in headers}
    }
    return {
        "url": draw(urls),
        "method": draw(st.sampled_from(["POST", "put", "PATCH", "DELETE", "GET"])),
        "payload": draw(payloads),
        "headers": headers,
        "secret_headers": secrets,
        "auth": draw(st.sampled_from(["oidc", "none"])),
        "timeout_seconds": draw(st.integers(1, 100) | st.floats(1, 100)),
        "retry": {"max_attempts": draw(st.integers(1, 20))},
    }


@st.composite
def valid_requests(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.from_regex(STEP_NAME_RE, fullmatch=True), min_size=1, max_size=3, unique=True))
    steps = []
    for index, name in enumerate(names):
        if draw(st.booleans()):
            steps.append({"name": name, "execute_url": draw(urls), "execute_payload": draw(payloads)})
        else:
            compensate = draw(st.none() | actions(names[: index + 1]))
            steps.append({"name": name, "execute": draw(actions(names[:index])), "compensate": compensate})
    request: dict[str, Any] = {
        "steps": steps,
        "metadata": draw(st.dictionaries(st.text(max_size=5), payloads)),
    }
    if draw(st.booleans()):
        request["saga_id"] = draw(st.from_regex(SAGA_ID_RE, fullmatch=True))
    return request


def places(value: Any, where: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every position in ``value``: each key of each object, each index of each array."""
    found = [where]
    if isinstance(value, dict):
        for key, child in value.items():
            found += places(child, (*where, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += places(child, (*where, index))
    return found


@st.composite
def mutated_requests(draw: st.DrawFn) -> Any:
    """A valid request with one value replaced: by anything, by a nasty string, or by itself plus a
    newline."""
    request = draw(valid_requests())
    where = draw(st.sampled_from(places(request)))
    if not where:
        return draw(json_values)
    parent = request
    for key in where[:-1]:
        parent = parent[key]
    old = parent[where[-1]]
    parent[where[-1]] = draw(
        st.one_of(json_values, deep_values, st.just(old + "\n") if isinstance(old, str) else json_values)
    )
    return request


# --- the properties ----------------------------------------------------------------------------------


def outcome(data: Any) -> SagaRequest | InvalidRequestError:
    """The request, or the rejection; any other exception fails the test."""
    try:
        return validate_request(data, SETTINGS, message_id="m-1")
    except InvalidRequestError as error:
        return error


def assert_named_and_publishable(error: InvalidRequestError) -> None:
    assert error.errors, "a rejection names at least one problem"
    for problem in error.errors:
        assert isinstance(problem.field, str) and isinstance(problem.message, str) and problem.message
        json.dumps(problem.to_dict(), ensure_ascii=False).encode("utf-8")  # publishable as is


class _Tokens:
    def id_token(self, audience: str) -> str:
        return "token-for-" + audience

    def access_token(self) -> str:
        return "access-token"


def assert_sendable(request: SagaRequest) -> None:
    """What the workflow and the step executor make of it: the argument, each task's call read back,
    and the headers of each participant call, put through http.client's own checks."""
    argument = json.loads(request.argument_json().encode("utf-8"))
    names = [step.name for step in request.steps]
    for step, step_argument in zip(request.steps, argument["steps"], strict=True):
        for action in ACTIONS:
            spec = step.action(action)
            if spec is None:
                continue
            assert ActionSpec.from_dict(step_argument[action], SETTINGS) == spec
            call = prepare(
                spec,
                CallContext(request.saga_id, step.name, action),
                outputs={},
                secret_values={name: "secret-value" for name in spec.secret_headers},
                tokens=_Tokens(),
                unknown=names,
            )
            connection = http.client.HTTPConnection("127.0.0.1")
            parts = urlsplit(call.url)
            connection.putrequest(call.method, parts.path or "/", skip_host=True)
            for name, value in call.headers.items():
                connection.putheader(name, value)


@PROPERTY
@given(
    st.one_of(
        st.binary(max_size=200),
        json_values.map(json.dumps).map(str.encode),
        deep_texts,
    )
)
def test_any_message_data_decodes_and_validates_or_is_rejected_naming_the_problem(raw: bytes) -> None:
    try:
        data = decode_request(raw)
    except InvalidRequestError as error:
        assert_named_and_publishable(error)
        return
    result = outcome(data)
    if isinstance(result, InvalidRequestError):
        assert_named_and_publishable(result)


@PROPERTY
@given(st.one_of(json_values, deep_values, mutated_requests()))
def test_any_value_validates_or_is_rejected_naming_the_problem(data: Any) -> None:
    result = outcome(data)
    if isinstance(result, InvalidRequestError):
        assert_named_and_publishable(result)
    else:
        assert_sendable(result)


@PROPERTY
@given(mutated_requests().map(lambda request: json.dumps(request).encode()))
def test_a_mutated_request_sent_as_json_text_is_started_or_rejected_and_never_breaks_a_call(
    raw: bytes,
) -> None:
    try:
        result = outcome(decode_request(raw))
    except InvalidRequestError as error:
        result = error
    if isinstance(result, InvalidRequestError):
        assert_named_and_publishable(result)
    else:
        assert_sendable(result)


@PROPERTY
@given(valid_requests())
def test_every_valid_request_becomes_a_workflow_argument_task_calls_and_headers(data: dict[str, Any]) -> None:
    result = outcome(data)
    assert isinstance(result, SagaRequest), result
    assert_sendable(result)
