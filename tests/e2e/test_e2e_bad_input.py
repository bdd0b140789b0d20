"""Bad input never vanishes (issue 14), on the real local stack: every message published on
``saga-requests`` that is not a valid request gets exactly one ``rejected`` result naming the problem, and
``start_saga`` answers none of them with a 500 (which would have Eventarc redeliver it for a day).

A result is matched to its message by the request's saga id when it has a valid one, else by the id the
starter derives from the Pub/Sub message id. The problems each result names are compared with what the
library's own validation (same settings as the functions) says about the same bytes.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from saga_orchestrator.errors import InvalidRequestError
from saga_orchestrator.model import derive_saga_id, is_saga_id
from saga_orchestrator.settings import Settings
from saga_orchestrator.validation import decode_request, validate_request
from saga_orchestrator.workflows.saga_orchestrator import SagaOrchestrator

from devstack.stack import LocalStack
from tests.e2e.results import ResultListener
from tests.e2e.test_e2e_sagas import EVENT_TYPE, log_entries, schema_problems
from tests.support.eventually import eventually

pytestmark = pytest.mark.e2e

FUZZ_SEED = 14
FUZZ_MESSAGES = 300
RESULTS_TIMEOUT = 60.0
# Flask's line when a function raises (functions-framework then answers 500).
CRASH_LINE = "Exception on /"


@pytest.fixture(scope="module")
def settings(stack: LocalStack) -> Settings:
    return Settings.from_env(stack.function_environment())


class CrashWatch:
    """The lines ``start_saga`` writes from now on that say a request crashed it."""

    def __init__(self, stack: LocalStack) -> None:
        self._path = stack.log_dir / "start_saga.log"
        self._start = self._path.stat().st_size

    def crashes(self) -> list[str]:
        with self._path.open("rb") as log:
            log.seek(self._start)
            text = log.read().decode("utf-8", errors="replace")
        return [line for line in text.splitlines() if CRASH_LINE in line or '"severity": "ERROR"' in line]


def text_of(request: Any) -> bytes:
    """JSON text with non-ASCII (and lone surrogates) escaped, as most publishers write it."""
    return json.dumps(request).encode("ascii")


def base_request(stack: LocalStack, saga_id: str | None) -> dict[str, Any]:
    url = stack.participant_urls["flight"]
    request: dict[str, Any] = {
        "steps": [
            {
                "name": "book",
                "execute": {"url": url + "/flight/book", "payload": {"from": "AMS"}, "headers": {"X-T": "1"}},
                "compensate": {
                    "url": url + "/flight/cancel",
                    "payload": {"id": {"$ref": "steps.book.output.id"}},
                },
            }
        ],
        "metadata": {"fuzz": True},
    }
    if saga_id is not None:
        request["saga_id"] = saga_id
    return request


def _deep(request: dict[str, Any], rng: random.Random) -> bytes:
    depth = rng.randint(65, 2000)
    text = text_of(request).decode()
    return text.replace('{"from": "AMS"}', "[" * depth + "]" * depth, 1).encode()


def _surrogate(request: dict[str, Any], rng: random.Random) -> bytes:
    lone = rng.choice(["\ud800", "\udbff", "\udc00", "\udfff"])
    where = rng.choice(["url", "payload", "key", "metadata"])
    execute = request["steps"][0]["execute"]
    if where == "url":
        execute["url"] += "/" + lone
    elif where == "payload":
        execute["payload"]["from"] = "A" + lone
    elif where == "key":
        execute["payload"][lone] = 1
    else:
        request["metadata"] = {"note": lone}
    return text_of(request)


def _trailing_newline(request: dict[str, Any], rng: random.Random) -> bytes:
    step = request["steps"][0]
    execute = step["execute"]
    where = rng.choice(["saga_id", "name", "header name", "header value", "secret", "ref"])
    if where == "saga_id":
        request["saga_id"] = request.get("saga_id", "fz") + "\n"
    elif where == "name":
        step["name"] = "book\n"
    elif where == "header name":
        execute["headers"] = {"X-A\n": "v"}
    elif where == "header value":
        execute["headers"] = {"X-A": rng.choice(["v\n", "v\r\nX-Evil: 1", "v\x00", "caf\u00e9"])}
    elif where == "secret":
        execute["secret_headers"] = {"X-Key": {"secret": "payment-api-key\n"}}
    else:
        step["compensate"]["payload"]["id"]["$ref"] += "\n"
    return text_of(request)


JUNK: list[Any] = [None, True, 0, -1, 2**64, 1.5, "", "x" * 300, "\n", [], [1], {}, {"$ref": 1}, {"a": None}]


def _mutated(request: dict[str, Any], rng: random.Random) -> bytes:
    """One field of the valid request replaced by junk (not always invalid; kept only if rejected)."""
    places: list[tuple[Any, Any]] = []

    def collect(value: Any) -> None:
        if isinstance(value, dict):
            places.extend((value, key) for key in value)
            for child in value.values():
                collect(child)
        elif isinstance(value, list):
            places.extend((value, index) for index in range(len(value)))
            for child in value:
                collect(child)

    collect(request)
    parent, key = rng.choice(places)
    parent[key] = rng.choice(JUNK)
    return text_of(request)


def _raw(request: dict[str, Any], rng: random.Random) -> bytes:
    text = text_of(request)
    return rng.choice(
        [
            text[: rng.randint(0, len(text) - 1)],  # cut short
            text.replace(b'"AMS"', b"NaN"),
            text.replace(b'"AMS"', b"9" * 5000),
            text.replace(b"AMS", b"\xff\xfe"),
            b"null",
            b'"a string"',
        ]
    )


FAMILIES: list[Callable[[dict[str, Any], random.Random], bytes]] = [
    _deep,
    _surrogate,
    _trailing_newline,
    _mutated,
    _mutated,
    _raw,
]


def expected_problems(raw: bytes, settings: Settings) -> list[dict[str, str]] | None:
    """What the door says about ``raw`` (None: it is a valid request)."""
    try:
        validate_request(decode_request(raw), settings, message_id="local")
    except InvalidRequestError as error:
        return [problem.to_dict() for problem in error.errors]
    return None


def usable_saga_id(raw: bytes) -> str | None:
    """The request's saga id if the starter can use it (the data decodes and the id is valid)."""
    try:
        request = decode_request(raw)
    except InvalidRequestError:
        return None
    given = request.get("saga_id") if isinstance(request, dict) else None
    return given if is_saga_id(given) else None


def fuzz_messages(stack: LocalStack, settings: Settings) -> list[tuple[bytes, list[dict[str, str]]]]:
    rng = random.Random(FUZZ_SEED)
    batch = uuid.uuid4().hex[:6]
    messages: list[tuple[bytes, list[dict[str, str]]]] = []
    while len(messages) < FUZZ_MESSAGES:
        n = len(messages)
        saga_id = f"fz-{batch}-{n:03d}" if rng.random() < 0.7 else None
        raw = rng.choice(FAMILIES)(base_request(stack, saga_id), rng)
        problems = expected_problems(raw, settings)
        if problems is not None:
            messages.append((raw, problems))
    return messages


def test_a_few_hundred_bad_requests_each_get_exactly_one_rejected_result_and_no_crash(
    stack: LocalStack, results: ResultListener, settings: Settings
) -> None:
    messages = fuzz_messages(stack, settings)
    watch = CrashWatch(stack)
    topic = f"projects/{stack.settings.project_id}/topics/{stack.settings.require('SAGA_REQUEST_TOPIC')}"
    publisher = stack.factory.publisher()
    started = time.monotonic()
    futures = [publisher.publish(topic, raw) for raw, _ in messages]
    message_ids = [str(future.result(timeout=30)) for future in futures]
    expected = {
        usable_saga_id(raw) or derive_saga_id(message_id): (message_id, problems)
        for (raw, problems), message_id in zip(messages, message_ids, strict=True)
    }
    assert len(expected) == FUZZ_MESSAGES, "each message has a saga id of its own"

    eventually(
        lambda: not (set(expected) - results.subjects()),
        timeout=RESULTS_TIMEOUT,
        every=0.2,
        what=f"a result for each of {FUZZ_MESSAGES} bad requests",
    )
    elapsed = time.monotonic() - started

    for saga_id, (message_id, problems) in expected.items():
        (event,) = results.events(saga_id)
        result = event.data
        assert event.type == EVENT_TYPE + "rejected", (saga_id, result)
        assert schema_problems(result) == []
        assert (result["saga_id"], result["event_id"], result["execution"]) == (saga_id, message_id, None)
        assert result["errors"] == problems, saga_id
    assert watch.crashes() == []
    print(f"{FUZZ_MESSAGES} bad requests rejected in {elapsed:.1f}s")


# --- the reproductions of the issue, one each --------------------------------------------------------

Build = Callable[[dict[str, Any]], bytes]


def _repro_deep(request: dict[str, Any]) -> bytes:
    request["steps"][0]["execute"]["payload"] = "DEEP"
    return text_of(request).replace(b'"DEEP"', b"[" * 1000 + b"]" * 1000)


def _repro_surrogate(request: dict[str, Any]) -> bytes:
    request["steps"][0]["execute"]["url"] += "/x/\ud800"
    return text_of(request)


def _repro_saga_id(request: dict[str, Any]) -> bytes:
    request["saga_id"] = "fz-1\n"
    return text_of(request)


def _repro_step_name(request: dict[str, Any]) -> bytes:
    request["steps"][0]["name"] = "a\n"
    return text_of(request)


def _repro_header_name(request: dict[str, Any]) -> bytes:
    request["steps"][0]["execute"]["headers"] = {"X-A\n": "v"}
    return text_of(request)


@pytest.mark.parametrize(
    ("build", "field", "message"),
    [
        (_repro_deep, "steps[0].execute.payload" + "[0]" * 60, "more than 64 levels deep"),
        (_repro_surrogate, "steps[0].execute.url", "lone surrogate U+D800"),
        (_repro_saga_id, "saga_id", "lowercase letters, digits"),
        (_repro_step_name, "steps[0].name", "letters, digits"),
        (_repro_header_name, "steps[0].execute.headers.X-A\n", "is not a valid header name"),
    ],
    ids=[
        "nested-1000-deep",
        "lone-surrogate-in-url",
        "saga-id-newline",
        "step-name-newline",
        "header-newline",
    ],
)
def test_each_reproduction_gets_one_rejected_result_naming_the_field(
    stack: LocalStack,
    results: ResultListener,
    orchestrator: SagaOrchestrator,
    build: Build,
    field: str,
    message: str,
) -> None:
    watch = CrashWatch(stack)
    saga_id = f"fz-{uuid.uuid4().hex[:8]}"
    raw = build(base_request(stack, saga_id))
    message_id = stack.publish_request(raw)
    answered = saga_id if usable_saga_id(raw) else derive_saga_id(message_id)

    event = eventually(
        lambda: results.wait(answered, 1.0), timeout=RESULTS_TIMEOUT, what=f"the rejection of {answered}"
    )
    result = event.data
    assert (event.type, result["status"], result["event_id"]) == (
        EVENT_TYPE + "rejected",
        "rejected",
        message_id,
    )
    assert any(e["field"] == field and message in e["message"] for e in result["errors"]), result["errors"]
    assert results.events(answered) == [event]
    assert orchestrator.find_execution(answered) is None
    eventually(
        lambda: (
            [e["message"] for e in log_entries(stack, "start_saga", answered)] == ["saga request rejected"]
        ),
        timeout=10.0,
        what="start_saga to log the rejection",
    )
    assert watch.crashes() == []
