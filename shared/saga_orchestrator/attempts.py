"""Every attempt of a saga's actions and what it answered, read back from Cloud Logging.

The saga result keeps, per action, only the number of attempts and the last error; step_executor logs
one line per attempt (``executor.StepExecutor.run``: ``action``, ``attempt``, ``max_attempts``,
``outcome``, ``status_code``, ``answer``, labelled ``saga_id`` and ``step``), which Cloud Run turns into a
LogEntry. This module lists those entries with ``entries.list``
(https://cloud.google.com/logging/docs/reference/v2/rest/v2/entries/list), oldest first, 1000 a page, with
the filter

    labels.saga_id="ID" AND jsonPayload.logger="saga_orchestrator.executor" AND jsonPayload.attempt>=1
    [AND timestamp>="SINCE"]

(https://cloud.google.com/logging/docs/view/logging-query-language). ``since`` (the saga's start time,
less ``SINCE_MARGIN_SECONDS`` for clocks that disagree) keeps the search to the saga's lifetime, which
Cloud Logging answers much faster than a search over the whole retention period.

Where: ``https://logging.googleapis.com``, or ``http://<LOGGING_EMULATOR_HOST>`` when the local cloud's
emulator is named. As whom: the metadata server's account when ``GCE_METADATA_HOST`` is set, else
Application Default Credentials (``callbacks.MetadataServerCredentials`` / ``DefaultCredentials``). The
caller needs ``logging.logEntries.list`` on the project (roles/logging.viewer). Limits: Cloud Logging shows
an entry a few seconds after it was written, so the newest attempts of a running saga may be missing;
``entries.list`` has a quota of 60 requests a minute per project; at most ``MAX_ENTRIES`` attempts are read.
Duplicate deliveries of one log line (same ``insertId``) count once; two deliveries of one Cloud Task
attempt are two attempts, as they were two calls to the participant.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from saga_orchestrator.callbacks import (
    CallerCredentials,
    DefaultCredentials,
    MetadataServerCredentials,
)
from saga_orchestrator.errors import SagaError
from saga_orchestrator.ports import HttpCallError, HttpTransport
from saga_orchestrator.times import parse_time

GOOGLE_BASE_URL = "https://logging.googleapis.com"
EXECUTOR_LOGGER = "saga_orchestrator.executor"
PAGE_SIZE = 1000
MAX_ENTRIES = 10_000
SINCE_MARGIN_SECONDS = 60.0
TIMEOUT_SECONDS = 30.0
MAX_ANSWER_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Attempt:
    """One call of a participant by step_executor. ``outcome``: success, business or transient
    (``participant.CallOutcome.kind``); ``status_code``: the HTTP status, None when there was no answer;
    ``message``: the answer as classified (status line and body, or why there was no answer), cut to a
    few hundred characters; ``time``: when it was logged (RFC 3339)."""

    step: str
    action: str
    attempt: int
    max_attempts: int | None
    outcome: str
    status_code: int | None
    message: str
    time: str


# (step, action) -> its attempts in order; keys in the order their first attempt was made.
Attempts = dict[tuple[str, str], list[Attempt]]


def logging_base_url(env: Mapping[str, str]) -> str:
    host = (env.get("LOGGING_EMULATOR_HOST") or "").strip()
    return f"http://{host}" if host else GOOGLE_BASE_URL


def attempt_filter(saga_id: str, since: str | None = None) -> str:
    terms = [
        f"labels.saga_id={_quoted(saga_id)}",
        f"jsonPayload.logger={_quoted(EXECUTOR_LOGGER)}",
        "jsonPayload.attempt>=1",
    ]
    start = parse_time(since)
    if start is not None:
        earlier = start - datetime.timedelta(seconds=SINCE_MARGIN_SECONDS)
        terms.append(f"timestamp>={_quoted(earlier.isoformat().replace('+00:00', 'Z'))}")
    return " AND ".join(terms)


class AttemptLog:
    """Reads step_executor's attempt lines of one project's sagas."""

    def __init__(
        self, base_url: str, http: HttpTransport, credentials: CallerCredentials, project_id: str
    ) -> None:
        self._url = base_url.rstrip("/") + "/v2/entries:list"
        self._http = http
        self._credentials = credentials
        self._project_id = project_id

    def attempts(self, saga_id: str, *, since: str | None = None, limit: int = MAX_ENTRIES) -> Attempts:
        """The saga's attempts per (step, action). Raises ``SagaError`` when the API refuses (its message
        says why: a missing role, a bad filter) or cannot be reached."""
        found: Attempts = {}
        seen: set[str] = set()
        for entry in self._entries(attempt_filter(saga_id, since), limit):
            insert_id = str(entry.get("insertId") or "")
            if insert_id and insert_id in seen:
                continue
            seen.add(insert_id)
            attempt = attempt_of(entry)
            if attempt is not None:
                found.setdefault((attempt.step, attempt.action), []).append(attempt)
        return found  # in the API's order: oldest first

    def _entries(self, filter_text: str, limit: int) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        token = ""
        while len(entries) < limit:
            request: dict[str, Any] = {
                "resourceNames": [f"projects/{self._project_id}"],
                "filter": filter_text,
                "orderBy": "timestamp asc",
                "pageSize": min(PAGE_SIZE, limit - len(entries)),
            }
            if token:
                request["pageToken"] = token
            page = self._call(request)
            entries += page.get("entries") or []
            token = str(page.get("nextPageToken") or "")
            if not token:
                break
        return entries[:limit]

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            answer = self._http.request(
                "POST",
                self._url,
                headers={
                    "Authorization": f"Bearer {self._credentials.access_token()}",
                    "Content-Type": "application/json",
                },
                body=json.dumps(request, separators=(",", ":")).encode("utf-8"),
                connect_timeout=TIMEOUT_SECONDS,
                read_timeout=TIMEOUT_SECONDS,
                max_body=MAX_ANSWER_BYTES,
            )
        except HttpCallError as error:
            raise SagaError(f"Cloud Logging entries.list failed: {error.message}") from None
        text = answer.body.decode("utf-8", errors="replace")
        if answer.status == 403:
            raise SagaError(
                "Cloud Logging refused to list log entries (HTTP 403): the caller needs"
                f" logging.logEntries.list on project {self._project_id} (roles/logging.viewer): {text[:300]}"
            )
        if not 200 <= answer.status < 300:
            raise SagaError(f"Cloud Logging entries.list answered HTTP {answer.status}: {text[:300]}")
        page = json.loads(text or "{}")
        return page if isinstance(page, dict) else {}


def attempt_of(entry: Mapping[str, Any]) -> Attempt | None:
    """The attempt an attempt line's LogEntry records, or None when the entry is not one."""
    payload = entry.get("jsonPayload")
    labels = entry.get("labels")
    if not isinstance(payload, Mapping) or not isinstance(labels, Mapping):
        return None
    number = payload.get("attempt")
    if not isinstance(number, int | float) or isinstance(number, bool):
        return None
    status = payload.get("status_code")
    most = payload.get("max_attempts")
    return Attempt(
        step=str(labels.get("step") or "?"),
        action=str(payload.get("action") or "?"),
        attempt=int(number),
        max_attempts=int(most) if isinstance(most, int | float) and not isinstance(most, bool) else None,
        outcome=str(payload.get("outcome") or "?"),
        status_code=int(status) if isinstance(status, int | float) and not isinstance(status, bool) else None,
        message=str(payload.get("answer") or ""),
        time=str(entry.get("timestamp") or ""),
    )


def operator_attempt_log(env: Mapping[str, str], project_id: str, http: HttpTransport) -> AttemptLog:
    """The attempt log as the operator: the metadata server's account when ``GCE_METADATA_HOST`` is set,
    else Application Default Credentials."""
    host = (env.get("GCE_METADATA_HOST") or "").strip()
    credentials: CallerCredentials = (
        MetadataServerCredentials(host, http) if host else DefaultCredentials(http)
    )
    return AttemptLog(logging_base_url(env), http, credentials, project_id)


def read_attempts(
    env: Mapping[str, str], project_id: str, saga_id: str, *, since: str | None = None
) -> Attempts:
    """The saga's attempts, read as the operator (``operator_attempt_log``). Raises ``SagaError`` when the
    API refuses, and google-auth's errors when there are no credentials."""
    from saga_orchestrator.httpclient import HttpClient

    return operator_attempt_log(env, project_id, HttpClient.from_env(env)).attempts(saga_id, since=since)


def render_attempts(attempts: Attempts) -> str:
    """Every attempt as text lines, grouped by step and action in the order they ran (no trailing
    newline); empty when there are none."""
    if not attempts:
        return ""
    width = max(len(step) for step, _ in attempts)
    lines = ["attempts (from the step executor's log):"]
    for (step, action), group in attempts.items():
        for index, attempt in enumerate(group):
            head = f"{step:<{width}}  {action:<10}" if index == 0 else " " * (width + 12)
            of = f"{attempt.attempt}/{attempt.max_attempts}" if attempt.max_attempts else str(attempt.attempt)
            code = str(attempt.status_code) if attempt.status_code is not None else "-"
            line = f"  {head}  {of:>5}  {_clock(attempt.time)}  {attempt.outcome:<9}  {code:>3}"
            lines.append((line + f"  {attempt.message}") if attempt.message else line)
    return "\n".join(lines)


def attempts_section(
    env: Mapping[str, str], project_id: str, saga_id: str | None, *, since: str | None = None
) -> str:
    """``render_attempts`` of the saga's attempts, or one line saying why there are none to show; never
    raises (the rest of a saga's view does not depend on Cloud Logging)."""
    if not saga_id:
        return "attempts: unknown (the execution names no saga id)"
    try:
        attempts = read_attempts(env, project_id, saga_id, since=since)
    except SagaError as error:
        return f"attempts: not available ({error})"
    except Exception as error:  # credentials (google-auth) or the metadata server
        return f"attempts: not available ({type(error).__name__}: {error})"
    return (
        render_attempts(attempts)
        or "attempts: none logged yet (Cloud Logging shows an entry seconds after it)"
    )


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _clock(value: str) -> str:
    """``HH:MM:SS.mmm`` (UTC) of an RFC 3339 time."""
    moment = parse_time(re.sub(r"(\.\d{6})\d+", r"\1", value))  # nanoseconds: Python keeps micro
    if moment is None:
        return " " * 12
    return moment.astimezone(datetime.UTC).strftime("%H:%M:%S.%f")[:12]
