"""``saga certify`` against real participants over HTTP: the SDK's on each framework adapter pass every
case; hand-written broken ones fail, and the report names the rule each one broke."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import saga_participant
from saga_participant import SQLiteStore
from saga_participant.certify import main
from saga_participant.stores.postgres import PostgresStore

from tests.participant.apps import (
    COMPENSATE,
    EXECUTE,
    FAILING_PAYLOAD,
    GOOD_PAYLOAD,
    BrokenFlights,
    Flaws,
    aiohttp_app,
    fastapi_app,
    flask_app,
    sdk_participant,
)
from tests.participant.servers import BackgroundLoop, Metadata, free_port, serve_asgi, serve_wsgi

ALL_CASES = {
    "repeated-execute",
    "concurrent-duplicates",
    "compensate-before-execute",
    "execute-after-compensate",
    "repeated-compensate",
    "business-failure-4xx",
    "missing-token",
    "tampered-token",
    "wrong-audience",
}


def certify(origin: str, metadata: Metadata, *extra: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(
        [
            "--execute", origin + EXECUTE,
            "--compensate", origin + COMPENSATE,
            "--payload", json.dumps(GOOD_PAYLOAD),
            "--failing-payload", json.dumps(FAILING_PAYLOAD),
            "--metadata-host", metadata.host,
            *extra,
        ],
        out=out,
    )  # fmt: skip
    return code, out.getvalue()


@contextlib.contextmanager
def sdk_server(
    framework: str,
    metadata: Metadata,
    background: BackgroundLoop,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[str]:
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    if framework == "flask":
        participant = sdk_participant(metadata, origin, SQLiteStore(str(tmp_path / "b.db")), use_async=False)
        with serve_wsgi(flask_app(participant), port) as served:
            yield served
    elif framework == "fastapi":
        store: PostgresStore = request.getfixturevalue("postgres_store")
        with serve_asgi(
            fastapi_app(sdk_participant(metadata, origin, store, use_async=True)), port
        ) as served:
            yield served
    else:
        participant = sdk_participant(metadata, origin, SQLiteStore(":memory:"), use_async=True)
        served, stop = background.serve(aiohttp_app(participant), port)
        try:
            yield served
        finally:
            stop()


@pytest.mark.parametrize("framework", ["flask", "fastapi", "aiohttp"])
def test_certify_passes_the_sdk_participant_on_each_adapter(
    framework: str,
    metadata: Metadata,
    background: BackgroundLoop,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    with sdk_server(framework, metadata, background, tmp_path, request) as origin:
        code, report = certify(origin, metadata)
    assert code == 0, report
    assert "certify: 9 passed, 0 failed, 0 skipped" in report


@pytest.mark.parametrize(
    ("flaws", "broken"),
    [
        (Flaws(dedupe=False), {"repeated-execute", "concurrent-duplicates", "repeated-compensate"}),
        (Flaws(refuse_late_execute=False), {"execute-after-compensate"}),
        (Flaws(failure_status=500), {"business-failure-4xx"}),
    ],
    ids=["no-dedupe", "execute-after-compensate-accepted", "500-for-a-business-failure"],
)
def test_certify_fails_a_broken_participant_naming_the_broken_rule(
    flaws: Flaws, broken: set[str], metadata: Metadata, background: BackgroundLoop
) -> None:
    port = free_port()
    origin, stop = background.serve(BrokenFlights(metadata, f"http://127.0.0.1:{port}", flaws).app(), port)
    try:
        code, text = certify(origin, metadata)
        _, as_json = certify(origin, metadata, "--json")
    finally:
        stop()
    assert code == 1
    cases = {case["name"]: case for case in json.loads(as_json)["cases"]}
    assert {name for name, case in cases.items() if case["outcome"] == "failed"} == broken
    assert {name for name, case in cases.items() if case["outcome"] == "passed"} == ALL_CASES - broken
    for name in broken:
        assert f"FAIL  {name}" in text and f"broken rule: {cases[name]['rule']}" in text


def test_the_json_report_shows_what_was_sent_and_what_came_back(
    metadata: Metadata, background: BackgroundLoop
) -> None:
    port = free_port()
    broken = BrokenFlights(metadata, f"http://127.0.0.1:{port}", Flaws(refuse_late_execute=False))
    origin, stop = background.serve(broken.app(), port)
    try:
        code, out = certify(
            origin, metadata, "--json", "--case", "execute-after-compensate", "--header", "X-Api-Key: s3cret"
        )
    finally:
        stop()
    report = json.loads(out)
    assert code == 1 and report["passed"] is False
    [case] = report["cases"]
    assert "answered HTTP 200" in case["reason"] and case["saga_id"].startswith(
        "certify-execute-after-compensate-"
    )
    compensate, late_execute, effects = case["exchanges"]
    assert compensate["sent"]["headers"]["X-Saga-Action"] == "compensate"
    assert late_execute["sent"]["headers"]["Idempotency-Key"] == f"{case['saga_id']}:certify:execute"
    assert late_execute["sent"]["headers"]["Authorization"] == "<redacted>"
    assert late_execute["sent"]["headers"]["X-Api-Key"] == "<redacted>"
    assert late_execute["sent"]["body"] == GOOD_PAYLOAD
    assert late_execute["received"]["status"] == 200 and "booking_id" in late_execute["received"]["body"]
    assert effects["received"]["body"]["effects"][0]["action"] == "execute"
    assert "s3cret" not in out


def test_a_token_file_is_used_and_cases_needing_the_metadata_server_are_skipped(
    metadata: Metadata, background: BackgroundLoop, tmp_path: Path
) -> None:
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    token_file = tmp_path / "token"
    token_file.write_text(metadata.token(origin) + "\n")
    participant = sdk_participant(metadata, origin, SQLiteStore(":memory:"), use_async=True)
    served, stop = background.serve(aiohttp_app(participant), port)
    try:
        code, report = certify(
            served, metadata, "--token-file", str(token_file), "--metadata-host", "127.0.0.1:9"
        )
    finally:
        stop()
    assert code == 0, report
    assert "SKIP  wrong-audience" in report and "8 passed, 0 failed, 1 skipped" in report


def test_no_token_to_be_had_exits_2_before_calling(tmp_path: Path) -> None:
    code = main(
        [
            "--execute",
            "http://127.0.0.1:9/a",
            "--compensate",
            "http://127.0.0.1:9/b",
            "--metadata-host",
            "127.0.0.1:9",
        ]
    )
    assert code == 2


def with_package_on_path() -> dict[str, str]:
    """This environment, with the folder holding ``saga_participant`` on the child's import path."""
    folder = str(Path(saga_participant.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [folder, os.environ.get("PYTHONPATH")]))}


def test_python_dash_m_runs_certify(metadata: Metadata, background: BackgroundLoop) -> None:
    port = free_port()
    origin, stop = background.serve(BrokenFlights(metadata, f"http://127.0.0.1:{port}", Flaws()).app(), port)
    try:
        finished = subprocess.run(
            [sys.executable, "-m", "saga_participant.certify", "--execute", origin + EXECUTE,
             "--compensate", origin + COMPENSATE, "--payload", json.dumps(GOOD_PAYLOAD),
             "--metadata-host", metadata.host, "--case", "missing-token"],
            capture_output=True, text=True, timeout=60, env=with_package_on_path(),
        )  # fmt: skip
    finally:
        stop()
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "PASS  missing-token" in finished.stdout
