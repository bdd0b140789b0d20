"""What Cloud Run's logging agent does with a container's output: each line becomes a LogEntry written
to Cloud Logging with ``entries.write``.

Line → entry (https://cloud.google.com/logging/docs/structured-logging, "Special JSON fields in
messages"; https://cloud.google.com/run/docs/logging, "Writing container logs"):

- a line holding a JSON object is a structured entry: ``severity`` (a LogSeverity name, any case)
  becomes the entry's severity;
  ``logging.googleapis.com/labels`` its labels, ``logging.googleapis.com/trace`` its trace,
  ``logging.googleapis.com/spanId`` its spanId, ``logging.googleapis.com/insertId`` its insertId,
  ``logging.googleapis.com/trace_sampled`` its traceSampled; ``time`` or ``timestamp`` (RFC 3339) its
  timestamp; everything else, ``message`` included, is the ``jsonPayload`` (so is a ``severity`` or a
  ``time`` that is not one);
- any other line is a ``textPayload`` with no severity (DEFAULT);
- every entry goes to the log ``projects/P/logs/run.googleapis.com%2Fstdout`` of the resource
  ``cloud_run_revision`` (labels ``project_id``, ``service_name``, ``revision_name``, ``location``,
  ``configuration_name``). The local runner merges stderr into stdout, so there is no ``%2Fstderr``
  log here.

Off the hot path: ``put`` only appends to a bounded queue (``MAX_QUEUED_LINES``) and never blocks; a
line that finds the queue full is dropped and counted (``dropped``). One thread turns lines into entries
and writes them in batches of at most ``MAX_BATCH`` entries, at least every ``FLUSH_SECONDS``. A batch
the API refuses or cannot take is tried ``WRITE_TRIES`` times, then dropped and counted. The access
token comes from the metadata server, as a Cloud Run instance's agent gets its own.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from localcloud.logging import rfc3339
from localcloud.logging.filters import SEVERITY_NUMBERS

LOG_ID = "run.googleapis.com%2Fstdout"
MAX_QUEUED_LINES = 20_000
MAX_BATCH = 500
FLUSH_SECONDS = 0.2
WRITE_TRIES = 3
TIMEOUT_SECONDS = 10.0
_SPECIAL = {
    "logging.googleapis.com/trace": "trace",
    "logging.googleapis.com/spanId": "spanId",
    "logging.googleapis.com/insertId": "insertId",
    "logging.googleapis.com/trace_sampled": "traceSampled",
}
_LABELS = "logging.googleapis.com/labels"
_CLOSE = object()


@dataclass(frozen=True)
class CloudRunRevision:
    """The monitored resource of one Cloud Run service's revision."""

    project_id: str
    service_name: str
    revision_name: str
    location: str

    def resource(self) -> dict[str, Any]:
        return {
            "type": "cloud_run_revision",
            "labels": {
                "project_id": self.project_id,
                "service_name": self.service_name,
                "revision_name": self.revision_name,
                "location": self.location,
                "configuration_name": self.service_name,
            },
        }


def log_entry(line: str, revision: CloudRunRevision, received: float) -> dict[str, Any]:
    """The LogEntry Cloud Run writes for one line of output read at ``received`` (epoch seconds)."""
    entry: dict[str, Any] = {
        "logName": f"projects/{revision.project_id}/logs/{LOG_ID}",
        "resource": revision.resource(),
        "timestamp": _rfc3339(received),
    }
    try:
        payload = json.loads(line)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        entry["textPayload"] = line
        return entry
    severity = payload.get("severity")
    if isinstance(severity, str) and severity.upper() in SEVERITY_NUMBERS:
        entry["severity"] = severity.upper()
        del payload["severity"]
    labels = payload.pop(_LABELS, None)
    if isinstance(labels, dict):
        entry["labels"] = {str(k): str(v) for k, v in labels.items()}
    for key, field in _SPECIAL.items():
        if key in payload:
            entry[field] = payload.pop(key)
    for key in ("time", "timestamp"):
        if isinstance(payload.get(key), str) and _is_rfc3339(payload[key]):
            entry["timestamp"] = payload.pop(key)
            break
    entry["jsonPayload"] = payload
    return entry


class MetadataAccessTokens:
    """The default service account's access token from the metadata server at ``host``, reused until a
    minute before it expires."""

    def __init__(self, host: str) -> None:
        self._url = f"http://{host}/computeMetadata/v1/instance/service-accounts/default/token"
        self._token = ""
        self._expires = 0.0

    def __call__(self) -> str:
        if time.monotonic() >= self._expires:
            request = urllib.request.Request(self._url, headers={"Metadata-Flavor": "Google"})
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:
                token = json.loads(answer.read())
            self._token = str(token["access_token"])
            self._expires = time.monotonic() + float(token.get("expires_in", 0)) - 60
        return self._token


class LogAgent:
    """Forwards lines of output to ``entries.write`` at ``http://{logging_host}``. Thread-safe ``put``."""

    def __init__(self, logging_host: str, access_token: Callable[[], str]) -> None:
        self._url = f"http://{logging_host}/v2/entries:write"
        self._access_token = access_token
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=MAX_QUEUED_LINES)
        self._thread = threading.Thread(target=self._run, name="log-agent", daemon=True)
        self._closed = False
        self._closing = threading.Event()  # set by close: a batch being gathered goes out at once
        self._give_up_at = float("inf")  # set by close: unwritten lines are dropped after it
        self.dropped = 0
        self.written = 0
        self._thread.start()

    def sink(self, revision: CloudRunRevision) -> Callable[[str], None]:
        """What a process's output pump calls with each line of ``revision``'s output."""
        return lambda line: self.put(revision, line)

    def put(self, revision: CloudRunRevision, line: str) -> None:
        if self._closed or not line.strip():
            return
        try:
            self._queue.put_nowait((revision, line, time.time()))
        except queue.Full:
            self.dropped += 1

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (for at most ``timeout`` seconds), then stop; later lines are ignored."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        self._give_up_at = time.monotonic() + timeout
        with contextlib.suppress(queue.Full):
            self._queue.put(_CLOSE, timeout=timeout)
        self._thread.join(max(0.0, self._give_up_at - time.monotonic()) + 1.0)

    def _run(self) -> None:
        while True:
            batch, closing = self._next_batch()
            if batch:
                self._write(batch)
            if closing or time.monotonic() >= self._give_up_at:
                self.dropped += self._queue.qsize()
                return

    def _next_batch(self) -> tuple[list[dict[str, Any]], bool]:
        """Wait for a line, then (unless a full batch is queued already) for the rest of
        ``FLUSH_SECONDS`` without waking for each line that arrives, and take what is queued."""
        first = self._queue.get()
        if first is _CLOSE:
            return [], True
        if self._queue.qsize() < MAX_BATCH - 1:
            self._closing.wait(FLUSH_SECONDS)
        batch = [log_entry(first[1], first[0], first[2])]
        while len(batch) < MAX_BATCH:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _CLOSE:
                return batch, True
            batch.append(log_entry(item[1], item[0], item[2]))
        return batch, False

    def _write(self, batch: list[dict[str, Any]]) -> None:
        body = json.dumps({"entries": batch, "partialSuccess": True}, separators=(",", ":")).encode()
        for attempt in range(WRITE_TRIES):
            try:
                request = urllib.request.Request(
                    self._url,
                    data=body,
                    method="POST",
                    headers={
                        "Content-Type": "application/json",
                        "Authorization": f"Bearer {self._access_token()}",
                    },
                )
                with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS):
                    self.written += len(batch)
                    return
            except urllib.error.HTTPError as error:
                if error.code == 400:  # partialSuccess: the valid entries were written
                    refused = _refused_count(error.read())
                    self.written += len(batch) - refused
                    self.dropped += refused
                    return
            except (OSError, ValueError, KeyError):
                pass
            if time.monotonic() >= self._give_up_at:
                break
            time.sleep(0.5 * (attempt + 1))
        self.dropped += len(batch)


def _refused_count(body: bytes) -> int:
    """How many entries a partial-success answer names as refused (all of them when it names none)."""
    try:
        details = json.loads(body)["error"].get("details") or []
        return sum(len(d.get("logEntryErrors") or {}) for d in details) or 1
    except (ValueError, KeyError, TypeError, AttributeError):
        return 1


def _is_rfc3339(text: str) -> bool:
    try:
        rfc3339.nanos(text)
    except ValueError:
        return False
    return True


def _rfc3339(epoch_seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch_seconds, datetime.UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
