"""The log agent: a Cloud Run container's output lines become LogEntries in the Cloud Logging emulator, as
Cloud Run's agent writes them, without ever making the process that prints wait."""

from __future__ import annotations

import asyncio
import json
import time

from localcloud.clock import ManualClock
from localcloud.logging.agent import LOG_ID, MAX_QUEUED_LINES, CloudRunRevision, LogAgent, log_entry
from tests.support.eventually import eventually_async
from tests.unit.localcloud.logging.conftest import AUTHORITY, CLOUD_PLATFORM, PROJECT, LoggingApi

REVISION = CloudRunRevision(PROJECT, "step-executor", "step-executor-00001-local", "us-central1")


def test_a_structured_line_maps_its_special_fields_and_keeps_the_rest_as_the_json_payload() -> None:
    line = json.dumps(
        {
            "severity": "warning",
            "message": "execute attempt 1/5: transient",
            "time": "2026-01-01T00:00:01.250Z",
            "logging.googleapis.com/labels": {"saga_id": "s-1", "step": "reserve_hotel"},
            "logging.googleapis.com/trace": f"projects/{PROJECT}/traces/abc",
            "logging.googleapis.com/spanId": "0001",
            "attempt": 1,
            "status_code": 500,
        }
    )
    entry = log_entry(line, REVISION, received=1_767_225_700.0)
    assert entry == {
        "logName": f"projects/{PROJECT}/logs/{LOG_ID}",
        "resource": {
            "type": "cloud_run_revision",
            "labels": {
                "project_id": PROJECT,
                "service_name": "step-executor",
                "revision_name": "step-executor-00001-local",
                "location": "us-central1",
                "configuration_name": "step-executor",
            },
        },
        "timestamp": "2026-01-01T00:00:01.250Z",
        "severity": "WARNING",
        "labels": {"saga_id": "s-1", "step": "reserve_hotel"},
        "trace": f"projects/{PROJECT}/traces/abc",
        "spanId": "0001",
        "jsonPayload": {"message": "execute attempt 1/5: transient", "attempt": 1, "status_code": 500},
    }


def test_any_other_line_is_a_text_payload_stamped_when_it_was_read() -> None:
    for line in ("gunicorn booting worker", "[1, 2]", '{"half": '):
        entry = log_entry(line, REVISION, received=1_767_225_600.5)
        assert entry["textPayload"] == line
        assert entry["timestamp"] == "2026-01-01T00:00:00.500000Z"
        assert "severity" not in entry and "jsonPayload" not in entry


async def test_lines_put_are_written_in_batches_and_read_back_by_entries_list(
    api: LoggingApi, clock: ManualClock
) -> None:
    await clock.advance(time.time() - clock.now())  # the agent stamps lines with the real time
    agent = LogAgent(api.service.address, lambda: AUTHORITY.mint_access_token(scopes=(CLOUD_PLATFORM,)).token)
    sink = agent.sink(REVISION)
    try:
        for i in range(30):
            sink(
                json.dumps(
                    {
                        "severity": "INFO",
                        "message": f"line {i}",
                        "logging.googleapis.com/labels": {"n": str(i)},
                    }
                )
            )
        sink("a plain line")
        sink("   ")  # blank lines make no entry

        await eventually_async(lambda: len(api.service.store) == 31, what="31 entries", timeout=10)
    finally:
        await asyncio.to_thread(agent.close)
    _, answer = await api.list(filter='labels.n="7" AND resource.type="cloud_run_revision"')
    (seventh,) = answer["entries"]
    assert seventh["jsonPayload"] == {"message": "line 7"} and seventh["severity"] == "INFO"
    assert seventh["resource"]["labels"]["service_name"] == "step-executor"
    assert (agent.written, agent.dropped) == (31, 0)


def test_put_never_blocks_a_full_queue_drops_and_counts() -> None:
    # Nothing listens at this address: the writer thread is busy retrying the first batch while lines pile up.
    agent = LogAgent("127.0.0.1:9", lambda: "token")
    started = time.monotonic()
    for i in range(MAX_QUEUED_LINES + 1_000):
        agent.put(REVISION, f"line {i}")
    assert time.monotonic() - started < 5.0
    assert agent.dropped >= 500
    agent.close(timeout=0.1)
    agent.put(REVISION, "after close")  # ignored, no error


def test_a_severity_or_time_that_is_not_one_stays_in_the_payload() -> None:
    line = json.dumps({"severity": "TRACE", "time": "yesterday", "message": "m"})
    entry = log_entry(line, REVISION, received=1_767_225_600.0)
    assert "severity" not in entry and entry["timestamp"] == "2026-01-01T00:00:00.000000Z"
    assert entry["jsonPayload"] == {"severity": "TRACE", "time": "yesterday", "message": "m"}
