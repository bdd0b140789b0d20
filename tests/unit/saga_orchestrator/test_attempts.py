"""The attempt reader against the local cloud's Cloud Logging emulator: step_executor's attempt lines, as the
library's structured logger prints them and Cloud Run's agent ships them, come back per step and action,
in order, with each answer; the caller's credentials come from the metadata server; a refusal says which
role is missing."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from saga_orchestrator.attempts import (
    Attempt,
    attempt_filter,
    attempts_section,
    operator_attempt_log,
    render_attempts,
)
from saga_orchestrator.errors import SagaError
from saga_orchestrator.httpclient import HttpClient
from saga_orchestrator.logging import StructuredLogger, log_context

from localcloud.auth import TokenAuthority
from localcloud.config import LocalCloudConfig
from localcloud.logging import server as logging_server
from localcloud.logging.agent import CloudRunRevision, log_entry
from localcloud.metadata import server as metadata_server
from localcloud.metadata.app import MetadataIdentity
from localcloud.runtime import Context

PROJECT = "attempts-project"
ACCOUNT = f"saga-operator@{PROJECT}.iam.gserviceaccount.com"
REVISION = CloudRunRevision(PROJECT, "step-executor", "step-executor-00001-local", "us-central1")
_AUTHORITY = TokenAuthority(key_size=1024)


@dataclass
class Cloud:
    """The metadata and Cloud Logging emulators on a loop in a background thread."""

    env: dict[str, str]
    loop: asyncio.AbstractEventLoop
    logging: logging_server.LoggingService

    def ship(self, lines: list[str]) -> None:
        """Write the lines to Cloud Logging as Cloud Run's agent does."""
        entries = [log_entry(line, REVISION, time.time()) for line in lines if line]
        future = asyncio.run_coroutine_threadsafe(self._write(entries), self.loop)
        future.result(timeout=30)

    async def _write(self, entries: list[dict[str, Any]]) -> None:
        self.logging.store.write({"entries": entries})


@pytest.fixture
def cloud(request: pytest.FixtureRequest) -> Iterator[Cloud]:
    scopes = getattr(request, "param", ("https://www.googleapis.com/auth/cloud-platform",))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    config = LocalCloudConfig.from_env(
        {"GCE_METADATA_HOST": "127.0.0.1:0", "LOGGING_EMULATOR_HOST": "127.0.0.1:0"}
    )
    ctx = Context(config=config, authority=_AUTHORITY)
    identity = MetadataIdentity(project_id=PROJECT, service_account_email=ACCOUNT, scopes=scopes)
    metadata = asyncio.run_coroutine_threadsafe(metadata_server.start(ctx, identity), loop).result(30)
    logging = asyncio.run_coroutine_threadsafe(logging_server.start(ctx), loop).result(30)
    try:
        yield Cloud(
            {"GCE_METADATA_HOST": metadata.address, "LOGGING_EMULATOR_HOST": logging.address}, loop, logging
        )
    finally:
        for service in (logging, metadata):
            asyncio.run_coroutine_threadsafe(service.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def attempt_line(saga_id: str, step: str, action: str, attempt: int, of: int, **answer: Any) -> str:
    """What step_executor prints for one attempt (the same logger, context and fields)."""
    out = io.StringIO()
    with log_context(saga_id=saga_id, step=step, trace=f"projects/{PROJECT}/traces/{saga_id}"):
        StructuredLogger("saga_orchestrator.executor", out).info(
            f"{action} attempt {attempt}/{of}: {answer['outcome']}",
            action=action,
            attempt=attempt,
            max_attempts=of,
            **answer,
        )
    return out.getvalue().strip()


def hotel_saga_lines(saga_id: str) -> list[str]:
    error = 'HTTP 500: {"error": "ERROR", "message": "injected server error"}'
    return [
        attempt_line(saga_id, "book_flight", "execute", 1, 3, outcome="success", status_code=200, answer=""),
        attempt_line(
            saga_id, "reserve_hotel", "execute", 1, 5, outcome="transient", status_code=500, answer=error
        ),
        attempt_line(
            saga_id, "reserve_hotel", "execute", 2, 5, outcome="transient", status_code=500, answer=error
        ),
        attempt_line(
            saga_id, "reserve_hotel", "execute", 3, 5, outcome="success", status_code=200, answer=""
        ),
        attempt_line(
            saga_id,
            "charge_payment",
            "execute",
            1,
            1,
            outcome="business",
            status_code=409,
            answer="HTTP 409: declined",
        ),
        attempt_line(
            saga_id, "reserve_hotel", "compensate", 1, 3, outcome="success", status_code=200, answer=""
        ),
    ]


def test_each_steps_attempts_come_back_in_order_with_their_answers(cloud: Cloud) -> None:
    noise = io.StringIO()
    with log_context(saga_id="trip-1", step="reserve_hotel"):
        StructuredLogger("saga_orchestrator.executor", noise).warning("refusing an invalid task")
    cloud.ship(
        [
            *hotel_saga_lines("trip-1"),
            *hotel_saga_lines("trip-2"),  # another saga
            noise.getvalue().strip(),  # the same saga's other lines
            "gunicorn: booting worker",
        ]
    )
    found = operator_attempt_log(cloud.env, PROJECT, HttpClient()).attempts("trip-1")
    assert list(found) == [
        ("book_flight", "execute"),
        ("reserve_hotel", "execute"),
        ("charge_payment", "execute"),
        ("reserve_hotel", "compensate"),
    ]
    hotel = found[("reserve_hotel", "execute")]
    assert [(a.attempt, a.max_attempts, a.outcome, a.status_code) for a in hotel] == [
        (1, 5, "transient", 500),
        (2, 5, "transient", 500),
        (3, 5, "success", 200),
    ]
    assert hotel[0].message == 'HTTP 500: {"error": "ERROR", "message": "injected server error"}'
    assert hotel[0].time <= hotel[1].time <= hotel[2].time
    (payment,) = found[("charge_payment", "execute")]
    assert payment == Attempt(
        "charge_payment", "execute", 1, 1, "business", 409, "HTTP 409: declined", payment.time
    )


def test_the_rendered_attempts_show_every_answer_under_its_step(cloud: Cloud) -> None:
    cloud.ship(hotel_saga_lines("trip-3"))
    text = attempts_section(cloud.env, PROJECT, "trip-3")
    lines = text.splitlines()
    assert lines[0] == "attempts (from the step executor's log):"
    hotel = next(i for i, line in enumerate(lines) if line.startswith("  reserve_hotel   execute"))
    assert "1/5" in lines[hotel] and "transient  500  HTTP 500: {" in lines[hotel]
    assert "2/5" in lines[hotel + 1] and "transient  500" in lines[hotel + 1]
    assert "3/5" in lines[hotel + 2] and lines[hotel + 2].rstrip().endswith("success    200")
    assert "reserve_hotel" not in lines[hotel + 1]  # the step is named once per group
    assert any(
        "charge_payment  execute" in line and "business   409  HTTP 409: declined" in line for line in lines
    )


def test_attempts_before_the_saga_started_are_left_out(cloud: Cloud) -> None:
    cloud.ship(hotel_saga_lines("trip-4"))
    log = operator_attempt_log(cloud.env, PROJECT, HttpClient())
    assert len(log.attempts("trip-4", since="2020-01-01T00:00:00Z")) == 4
    assert log.attempts("trip-4", since="2999-01-01T00:00:00Z") == {}


def test_more_attempts_than_a_page_are_all_read(cloud: Cloud) -> None:
    lines = [
        attempt_line(
            "trip-5", f"step_{i % 7}", "execute", i, 2000, outcome="transient", status_code=503, answer=""
        )
        for i in range(1, 1206)
    ]
    cloud.ship(lines)
    found = operator_attempt_log(cloud.env, PROJECT, HttpClient()).attempts("trip-5")
    assert sum(len(group) for group in found.values()) == 1205


@pytest.mark.parametrize("cloud", [("https://www.googleapis.com/auth/userinfo.email",)], indirect=True)
def test_a_caller_without_permission_is_told_which_role_it_needs(cloud: Cloud) -> None:
    with pytest.raises(SagaError, match=r"roles/logging\.viewer"):
        operator_attempt_log(cloud.env, PROJECT, HttpClient()).attempts("trip-6")
    assert attempts_section(cloud.env, PROJECT, "trip-6").startswith("attempts: not available (")


def test_without_attempts_or_without_the_api_the_section_says_so(cloud: Cloud) -> None:
    assert attempts_section(cloud.env, PROJECT, "nobody").startswith("attempts: none logged yet")
    unreachable = {**cloud.env, "LOGGING_EMULATOR_HOST": "127.0.0.1:9"}
    assert attempts_section(unreachable, PROJECT, "trip-7").startswith("attempts: not available (")
    assert attempts_section(cloud.env, PROJECT, None).startswith("attempts: unknown")


def test_the_filter_quotes_the_saga_id() -> None:
    text = attempt_filter('a"b\\c', since="2026-01-01T00:01:00Z")
    assert text.startswith('labels.saga_id="a\\"b\\\\c" AND ')
    assert text.endswith('timestamp>="2026-01-01T00:00:00Z"')


def test_render_of_no_attempts_is_empty() -> None:
    assert render_attempts({}) == ""
