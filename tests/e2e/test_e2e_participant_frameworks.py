"""The demo's three sagas and ``saga certify`` on participants built on each web framework the SDK has an
adapter for: aiohttp, FastAPI under uvicorn, and Flask under functions-framework (one function per
service). The participants share their business logic and pipeline (``examples/participants``); only
the web layer differs, so every framework must give the same outcomes and the same calls.

One stack per framework, its three participants all on that framework, so each framework serves every
service (payment's API key and decline, flight's 503s, hotel's 425) and ``saga certify`` checks all three
on it. aiohttp is the default, so its stack is the session's shared one (``conftest.stack``, no extra
start); FastAPI and functions-framework each start a stack of their own for this module. Measured on a
two-CPU machine: a stack starts in 2.6 to 4.5 s and stops in 2.5 to 6 s (functions-framework's gunicorn
participants start and stop slowest), the three sagas take about 3 s together, ``saga certify`` of the
three services a quarter of a second; the file adds about 22 s to a suite run (27 s alone, with the
session stack). Mixing frameworks in one stack would save one start and stop but leave each framework
only one service.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from saga_orchestrator.console.cli import EXIT_OK

from devstack.demo import SCENARIOS
from devstack.processes import PARTICIPANT_FRAMEWORKS
from devstack.settings import DeploymentSettings
from devstack.stack import PARTICIPANTS, LocalStack
from tests.e2e.results import ResultListener
from tests.e2e.test_e2e_console import saga
from tests.e2e.test_e2e_sagas import SERVICES, effects, new_saga_id, outcome_of, seen

pytestmark = pytest.mark.e2e

# What answers in the ``Server`` header of each framework's participants: proof of what really runs.
SERVER_HEADER = {"aiohttp": "aiohttp", "fastapi": "uvicorn", "functions-framework": "gunicorn"}

# What each participant sees of each demo saga: (service, step, action, status), in arrival order.
FLIGHT, HOTEL, PAYMENT = "flight", "hotel", "payment"
SEEN = {
    "trip-succeeds": [
        (FLIGHT, "book_flight", "execute", 200),
        (HOTEL, "reserve_hotel", "execute", 200),
        (PAYMENT, "charge_payment", "execute", 200),
    ],
    "payment-declined": [
        (FLIGHT, "book_flight", "execute", 200),
        (HOTEL, "reserve_hotel", "execute", 200),
        (PAYMENT, "charge_payment", "execute", 409),
        (HOTEL, "reserve_hotel", "compensate", 200),
        (FLIGHT, "book_flight", "compensate", 200),
    ],
    "transient-failures": [
        (FLIGHT, "book_flight", "execute", 503),
        (FLIGHT, "book_flight", "execute", 503),
        (FLIGHT, "book_flight", "execute", 200),
        (HOTEL, "reserve_hotel", "execute", 425),
        (HOTEL, "reserve_hotel", "execute", 200),
    ],
}


@pytest.fixture(scope="module", params=PARTICIPANT_FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def on_framework(
    framework: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LocalStack, ResultListener]]:
    """A running stack whose three participants run on ``framework``, and a listener on its results."""
    if framework == "aiohttp":
        yield request.getfixturevalue("stack"), request.getfixturevalue("results")
        return
    log_dir: Path = tmp_path_factory.mktemp(f"e2e-logs-{framework}")
    stack = LocalStack.launch(
        settings=DeploymentSettings.load(),
        log_dir=log_dir,
        ready_timeout=90.0,
        participant_frameworks=dict.fromkeys(PARTICIPANTS, framework),
    )
    listener: ResultListener | None = None
    try:
        listener = ResultListener(stack)
        yield stack, listener
    finally:
        if listener is not None:
            listener.close()
        stack.stop()


def server_of(url: str) -> str:
    with urllib.request.urlopen(f"{url}/_control/health", timeout=10) as response:
        return str(response.headers.get("Server", ""))


def test_each_participant_runs_on_the_framework_its_stack_was_given(
    framework: str, on_framework: tuple[LocalStack, ResultListener]
) -> None:
    stack, _ = on_framework
    assert stack.participant_frameworks == dict.fromkeys(PARTICIPANTS, framework)
    for service in PARTICIPANTS:
        assert SERVER_HEADER[framework] in server_of(stack.participant_urls[service]).lower()


def test_the_demo_sagas_come_out_as_the_demo_expects(
    framework: str, on_framework: tuple[LocalStack, ResultListener]
) -> None:
    stack, results = on_framework
    saga_ids = {}
    for scenario in SCENARIOS:
        saga_ids[scenario.example] = new_saga_id(f"{framework}-{scenario.example}")
        stack.publish_request(stack.example_request(scenario.example, saga_id=saga_ids[scenario.example]))
    for scenario in SCENARIOS:
        outcome = outcome_of(stack, results, saga_ids[scenario.example])
        assert scenario.check(outcome.result, stack) == [], scenario.title
        assert outcome.seen() == SEEN[scenario.example], scenario.title
        # Each business effect once, and every call came with a verified token.
        assert outcome.effects() == [call[:3] for call in SEEN[scenario.example] if call[3] == 200]
        assert all(call["caller"] for call in outcome.calls)
    declined = outcome_of(stack, results, saga_ids["payment-declined"])
    assert effects(declined.calls) == [
        (FLIGHT, "book_flight", "execute"),
        (HOTEL, "reserve_hotel", "execute"),
        (HOTEL, "reserve_hotel", "compensate"),
        (FLIGHT, "book_flight", "compensate"),
    ]
    assert seen(declined.calls)[2] == (PAYMENT, "charge_payment", "execute", 409)


def test_saga_certify_passes_each_participant(
    framework: str, on_framework: tuple[LocalStack, ResultListener]
) -> None:
    stack, _ = on_framework
    secret = f"projects/{stack.settings.project_id}/secrets/payment-api-key/versions/latest"
    api_key = stack.factory.secrets().access_secret_version(name=secret).payload.data.decode()
    for service, spec in SERVICES.items():
        origin = stack.participant_urls[service]
        headers = ["--header", f"X-Api-Key: {api_key}"] if service == PAYMENT else []
        code, report = saga(
            stack,
            "certify",
            *headers,
            *("--execute", origin + spec.execute_path, "--compensate", origin + spec.compensate_path),
            *("--payload", json.dumps(spec.payload)),
            *("--failing-payload", json.dumps({**spec.payload, "simulate": "FAILURE"})),
            *("--metadata-host", stack.config.metadata),
        )
        assert code == EXIT_OK, f"{service} on {framework}:\n{report}"
        assert "9 passed, 0 failed, 0 skipped" in report, report
