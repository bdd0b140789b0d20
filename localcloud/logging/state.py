"""Cloud Logging's state: log entries in memory, in the REST (JSON) shape of ``LogEntry``.

Behaviour (https://cloud.google.com/logging/docs/reference/v2/rest/v2/entries/write,
https://cloud.google.com/logging/docs/reference/v2/rest/v2/entries/list,
https://cloud.google.com/logging/docs/reference/v2/rest/v2/LogEntry):

- ``entries.write`` copies the request's ``logName``, ``resource`` and ``labels`` into the entries that
  lack them (a label the entry has is kept); it supplies ``timestamp`` (now) and ``insertId`` when
  missing, and sets ``receiveTimestamp``. Every entry needs a ``logName`` of the form
  ``projects/P/logs/LOG_ID`` (LOG_ID URL-encoded, under 512 characters of letters, digits, ``/_-.%``)
  and a ``resource`` with a ``type``; at most one payload; a known ``severity``; an RFC 3339
  ``timestamp``; at most 256 KiB as JSON (the "LogEntry size" quota). A bad entry fails the whole
  request, unless ``partialSuccess``: then the valid entries are written and the answer is still
  INVALID_ARGUMENT, listing each failed entry by its zero-based index. ``dryRun`` checks and writes
  nothing.
- ``entries.list`` needs ``resourceNames`` (``projects/P``; at most 100; the deprecated ``projectIds``
  add to them) and returns the matching entries oldest first (``orderBy`` ``timestamp asc``, the default)
  or newest first (``timestamp desc``), equal timestamps by ``insertId``. ``pageSize`` defaults to 50;
  a negative one or one over 1000 is refused. The page token is opaque (the last entry's sort key), so
  entries written between two pages do not shift the pages. Entries stamped more than 24 hours in the
  future are kept but not listed.

Bound: at most ``max_entries`` entries (default ``MAX_ENTRIES``) are kept; past it the oldest written go
first. Log views, buckets and the organization, folder and billing-account parents are not implemented
(INVALID_ARGUMENT names them).
"""

from __future__ import annotations

import collections
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc

from localcloud._paging import Paging
from localcloud.clock import Clock
from localcloud.logging import rfc3339
from localcloud.logging.filters import SEVERITIES, SEVERITY_NUMBERS, UnsupportedFilterError, parse_filter

MAX_ENTRIES = 100_000
MAX_ENTRY_BYTES = 256 * 1024
MAX_RESOURCE_NAMES = 100
MAX_PAGE_SIZE = 1000
FUTURE_LIMIT_NANOS = 24 * 3600 * 10**9
ORDERS = {"": False, "timestamp asc": False, "timestamp desc": True}
LIST_PAGES = Paging(
    default_size=50,
    max_size=MAX_PAGE_SIZE,
    negative_size_error="pageSize must not be negative",
    invalid_token_error="Invalid page token: {token!r}",
    base64_tokens=True,
)
_LOG_NAME = re.compile(r"^projects/(?P<project>[^/]+)/logs/(?P<log>[A-Za-z0-9/_.%-]{1,511})$")
_PROJECT = re.compile(r"^projects/(?P<project>[^/]+)$")
_PAYLOADS = ("textPayload", "jsonPayload", "protoPayload")


@dataclass(frozen=True)
class StoredEntry:
    entry: dict[str, Any]  # the LogEntry as entries.list returns it
    project: str
    nanos: int  # of ``timestamp``
    sort_key: str  # fixed-width nanos, then insertId: string order is timestamp order


class EntryError(ValueError):
    """One entry of a write is not acceptable."""


class LogStore:
    """The event loop's alone: not thread-safe."""

    def __init__(self, clock: Clock, *, max_entries: int = MAX_ENTRIES) -> None:
        self._clock = clock
        self._entries: collections.deque[StoredEntry] = collections.deque(maxlen=max_entries)

    def __len__(self) -> int:
        return len(self._entries)

    def write(self, request: Mapping[str, Any]) -> None:
        """``entries.write``; raises ``gexc.InvalidArgument``."""
        raw = request.get("entries")
        if not isinstance(raw, list) or not raw:
            raise gexc.InvalidArgument("entries: at least one log entry is required")
        now = self._now_nanos()
        accepted: list[StoredEntry] = []
        failed: dict[str, dict[str, Any]] = {}
        for index, item in enumerate(raw):
            try:
                accepted.append(self._accept(item, request, now))
            except EntryError as error:
                failed[str(index)] = {"code": 3, "message": str(error)}
        partial = request.get("partialSuccess") is True
        if not request.get("dryRun") and (partial or not failed):
            self._entries.extend(accepted)
        if failed:
            first = next(iter(failed.items()))
            raise gexc.InvalidArgument(
                f"Log entry with index {first[0]} is invalid: {first[1]['message']}"
                + (f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""),
                details=[
                    {
                        "@type": "type.googleapis.com/google.logging.v2.WriteLogEntriesPartialErrors",
                        "logEntryErrors": failed,
                    }
                ],
            )

    def list(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """``entries.list``; raises ``gexc.InvalidArgument``."""
        projects = _projects(request)
        try:
            chosen = parse_filter(str(request.get("filter") or ""))
        except UnsupportedFilterError as error:
            raise gexc.InvalidArgument(f"Unsupported filter: {error}") from None
        order = str(request.get("orderBy") or "").strip()
        if order not in ORDERS:
            raise gexc.InvalidArgument(
                f"orderBy: {order!r} is not supported; use 'timestamp asc' or 'timestamp desc'"
            )
        size = _page_size(request.get("pageSize"))
        horizon = self._now_nanos() + FUTURE_LIMIT_NANOS
        found = [
            stored
            for stored in self._entries
            if stored.project in projects and stored.nanos <= horizon and chosen.matches(stored.entry)
        ]
        descending = ORDERS[order]
        found.sort(key=_sort_key, reverse=descending)
        page, token = LIST_PAGES.after_key_page(
            found, size, str(request.get("pageToken") or ""), _sort_key, descending=descending
        )
        answer: dict[str, Any] = {"entries": [stored.entry for stored in page]} if page else {}
        if token:
            answer["nextPageToken"] = token
        return answer

    def _accept(self, item: Any, request: Mapping[str, Any], now: int) -> StoredEntry:
        if not isinstance(item, Mapping):
            raise EntryError("a log entry must be an object")
        entry = dict(item)
        for key in ("logName", "resource"):
            if key not in entry and request.get(key):
                entry[key] = request[key]
        defaults = request.get("labels")
        if isinstance(defaults, Mapping) and defaults:
            entry["labels"] = {**{str(k): str(v) for k, v in defaults.items()}, **(entry.get("labels") or {})}
        log_name = _LOG_NAME.match(str(entry.get("logName") or ""))
        if log_name is None:
            raise EntryError(f"logName {entry.get('logName')!r} is not projects/[PROJECT_ID]/logs/[LOG_ID]")
        resource = entry.get("resource")
        if not isinstance(resource, Mapping) or not resource.get("type"):
            raise EntryError("resource: a monitored resource with a type is required")
        _check_fields(entry)
        nanos = _nanos(str(entry["timestamp"]), "timestamp") if entry.get("timestamp") else now
        entry["timestamp"] = _rfc3339(nanos)
        entry["receiveTimestamp"] = _rfc3339(now)
        entry.setdefault("severity", "DEFAULT")
        entry["insertId"] = str(entry.get("insertId") or secrets.token_hex(8))
        if len(json.dumps(entry, separators=(",", ":"))) > MAX_ENTRY_BYTES:
            raise EntryError(f"the log entry is larger than {MAX_ENTRY_BYTES} bytes")
        key = f"{nanos:020d}/{entry['insertId']}"
        return StoredEntry(entry, log_name.group("project"), nanos, key)

    def _now_nanos(self) -> int:
        return int(self._clock.now() * 1e9)


def _check_fields(entry: dict[str, Any]) -> None:
    if sum(1 for key in _PAYLOADS if key in entry) > 1:
        raise EntryError("a log entry has at most one of textPayload, jsonPayload and protoPayload")
    if "jsonPayload" in entry and not isinstance(entry["jsonPayload"], Mapping):
        raise EntryError("jsonPayload must be a JSON object")
    if "textPayload" in entry and not isinstance(entry["textPayload"], str):
        raise EntryError("textPayload must be a string")
    labels = entry.get("labels")
    if labels is not None and not (
        isinstance(labels, Mapping) and all(isinstance(v, str) for v in labels.values())
    ):
        raise EntryError("labels must map names to strings")
    severity = entry.get("severity")
    if severity is None:
        return
    if isinstance(severity, int) and severity in SEVERITY_NUMBERS.values():
        entry["severity"] = SEVERITIES[list(SEVERITY_NUMBERS.values()).index(severity)]
    elif str(severity).upper() in SEVERITY_NUMBERS:
        entry["severity"] = str(severity).upper()
    else:
        raise EntryError(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")


def _projects(request: Mapping[str, Any]) -> set[str]:
    names = list(request.get("resourceNames") or [])
    names += [f"projects/{p}" for p in request.get("projectIds") or []]
    if not names:
        raise gexc.InvalidArgument("resourceNames: at least one resource name is required")
    if len(names) > MAX_RESOURCE_NAMES:
        raise gexc.InvalidArgument(f"resourceNames: at most {MAX_RESOURCE_NAMES} resource names")
    projects = set()
    for name in names:
        match = _PROJECT.match(str(name))
        if match is None:
            raise gexc.InvalidArgument(
                f"resourceNames: {name!r} is not supported by this emulator (only projects/[PROJECT_ID])"
            )
        projects.add(match.group("project"))
    return projects


def _page_size(value: Any) -> int:
    try:
        size = int(value or 0)
    except (TypeError, ValueError):
        raise gexc.InvalidArgument(f"pageSize: {value!r} is not an integer") from None
    if size > MAX_PAGE_SIZE:
        raise gexc.InvalidArgument(f"pageSize: {size} is over the maximum of {MAX_PAGE_SIZE}")
    return LIST_PAGES.size(size)


def _sort_key(stored: StoredEntry) -> str:
    return stored.sort_key


def _nanos(text: str, field: str) -> int:
    try:
        return rfc3339.nanos(text)
    except ValueError:
        raise EntryError(f"{field} {text!r} is not an RFC 3339 time") from None


def _rfc3339(nanos: int) -> str:
    return rfc3339.text(nanos)
