"""Step entries as the Executions REST API answers them: ``stepEntries.list`` and ``stepEntries.get``
(https://cloud.google.com/workflows/docs/reference/executions/rest/v1/projects.locations.workflows.executions.stepEntries,
https://cloud.google.com/workflows/docs/reference/executions/rest/v1/projects.locations.workflows.executions.stepEntries/list,
and the workflowexecutions v1 discovery document for the types).

- A ``StepEntry`` is ProtoJSON: camelCase names, enums by name, times in RFC 3339, int64 fields
  (``entryId``, the ``navigationInfo`` ids, ``progressNumber``, ``expectedIteration``) as strings, fields
  at their default left out; ``exception.payload`` is the error map as a JSON string.
- ``list`` answers ``stepEntries``, ``nextPageToken`` (left out on the last page) and ``totalSize`` (an
  int32: the entries that match the filter, so far for a running execution). Entries come by ascending
  ``entryId`` unless ``orderBy`` (comma-separated ``entryId``, ``createTime``, ``updateTime``,
  ``routine``, ``step``, ``stepType``, ``state``, each optionally ``desc``) says otherwise.
- ``pageSize``: "The default max is 1000": 1,000 is both the default and the most a page holds. In the
  default order the page token is the last entry id sent, so entries added while a client pages shift
  nothing; with ``orderBy`` it is an offset. ``skip`` skips that many entries from where the page starts.
- ``filter`` is the AIP-160 subset of ``ListExecutions`` over ``entryId``, ``createTime``,
  ``updateTime``, ``routine``, ``step``, ``stepType``, ``parent`` (the ``navigationInfo.parent`` id) and
  ``state``; states and step types may be written with or without their ``STATE_``/``STEP_`` prefix
  (the documented example is ``state="SUCCEEDED"``).
- ``view`` (deprecated): BASIC leaves out ``variableData``, which only the DETAILED history level records.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

from google.api_core import exceptions as gexc

from localcloud._paging import Paging
from localcloud.workflows.engine.history import Links, StepEntry, StepHistory
from localcloud.workflows.service.filters import compare_with, compile_filter, parse_time
from localcloud.workflows.service.protos import rfc3339

VIEWS = ("EXECUTION_ENTRY_VIEW_UNSPECIFIED", "EXECUTION_ENTRY_VIEW_BASIC", "EXECUTION_ENTRY_VIEW_DETAILED")
PAGES = Paging(
    default_size=1000,
    max_size=1000,
    negative_size_error="pageSize must not be negative",
    base64_tokens=True,
)
_FILTER_FIELDS: dict[str, Callable[[StepEntry], Any]] = {
    "entryid": attrgetter("entry_id"),
    "createtime": attrgetter("create_time"),
    "updatetime": attrgetter("update_time"),
    "routine": attrgetter("routine"),
    "step": attrgetter("step"),
    "steptype": attrgetter("step_type"),
    "parent": attrgetter("parent"),
    "state": attrgetter("state"),
}
_ORDER_FIELDS = {name: get for name, get in _FILTER_FIELDS.items() if name != "parent"}


def entry_json(execution: str, entry: StepEntry, links: Links, *, variables: bool = True) -> dict[str, Any]:
    """``entry`` of the execution named ``execution``, with its ``links`` (``history.navigation``);
    ``variables`` false is the BASIC view."""
    body: dict[str, Any] = {
        "name": f"{execution}/stepEntries/{entry.entry_id}",
        "createTime": rfc3339(entry.create_time),
        "updateTime": rfc3339(entry.update_time),
        "routine": entry.routine,
        "step": entry.step,
        "stepType": entry.step_type,
        "state": entry.state,
    }
    if entry.error is not None:
        payload = json.dumps(entry.error, separators=(",", ":"), ensure_ascii=False, default=str)
        body["exception"] = {"payload": payload}
    body["entryId"] = str(entry.entry_id)
    navigation = _int64s(
        children=links.children or None,
        next=links.next,
        parent=entry.parent,
        previous=links.previous,
    )
    if navigation:
        body["navigationInfo"] = navigation
    metadata = _int64s(expectedIteration=entry.expected_iteration, progressNumber=entry.progress_number)
    if entry.progress_type is not None:
        metadata["progressType"] = entry.progress_type
    if entry.thread_id is not None:
        metadata["threadId"] = entry.thread_id
    if metadata:
        body["stepEntryMetadata"] = metadata
    if variables and entry.variables is not None:
        body["variableData"] = {"variables": json.loads(entry.variables)}
    return body


def _int64s(**fields: Any) -> dict[str, Any]:
    """The fields that are set, int64s written as strings (ProtoJSON)."""
    shown: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, list):
            shown[name] = [str(item) for item in value]
        elif value is not None:
            shown[name] = str(value)
    return shown


def check_view(view: str) -> bool:
    """Whether ``view`` shows variables; INVALID_ARGUMENT for a view that does not exist."""
    if view and view not in VIEWS:
        raise gexc.InvalidArgument(f"invalid view {view!r}; expected one of {', '.join(VIEWS)}")
    return view != "EXECUTION_ENTRY_VIEW_BASIC"


def list_entries(
    execution: str,
    history: StepHistory,
    *,
    page_size: int = 0,
    page_token: str = "",
    skip: int = 0,
    filter_text: str = "",
    order_by: str = "",
    view: str = "",
) -> dict[str, Any]:
    """The ``ListStepEntriesResponse`` of ``stepEntries.list``. Without a filter, in the default order,
    only the page's entries are looked at."""
    variables = check_view(view)
    if skip < 0:
        raise gexc.InvalidArgument("skip must not be negative")
    predicate = compile_filter(filter_text, _comparison) if filter_text.strip() else None
    order = _order(order_by)
    matching: Sequence[Any] = history.ids()  # ids while nothing needs the entries themselves
    if predicate is not None or order:
        matching = [entry for entry in history.entries() if predicate is None or predicate(entry)]
        for key, descending in reversed(order):  # stable sorts, the last key first
            matching.sort(key=key, reverse=descending)
    size = PAGES.size(page_size)
    start = _start(matching, page_token, keyed=not order) + skip
    page = matching[start : start + size]
    entries = history.entries(page) if isinstance(matching, range) else page
    links = history.structure().links
    body: dict[str, Any] = {
        "stepEntries": [entry_json(execution, e, links[e.entry_id], variables=variables) for e in entries]
    }
    if start + size < len(matching):
        body["nextPageToken"] = PAGES.encode(str(entries[-1].entry_id if not order else start + size))
    body["totalSize"] = len(matching)
    return body


def _start(matching: Sequence[Any], page_token: str, *, keyed: bool) -> int:
    """Where the page of ``page_token`` starts: past the entry id it names (``keyed``, the default
    order), or at the offset it names."""
    if not page_token:
        return 0
    if keyed:
        last = PAGES.decode(page_token, int)
        return bisect.bisect_right(matching, last, key=_id_of)
    start = PAGES.decode(page_token, int)
    if not 0 <= start <= len(matching):
        raise gexc.InvalidArgument(f"invalid page_token {page_token!r}")
    return start


def _id_of(item: Any) -> int:
    return item if isinstance(item, int) else int(item.entry_id)


def get_entry(execution: str, history: StepHistory, entry_id: str, *, view: str = "") -> dict[str, Any]:
    """The ``StepEntry`` of ``stepEntries.get``; NOT_FOUND for an id the execution does not (or no
    longer) hold."""
    variables = check_view(view)
    entry = history.get(int(entry_id)) if entry_id.isdigit() else None
    if entry is None:
        raise gexc.NotFound(f"Resource '{execution}/stepEntries/{entry_id}' was not found")
    return entry_json(execution, entry, history.structure().links[entry.entry_id], variables=variables)


def _order(order_by: str) -> list[tuple[Callable[[StepEntry], Any], bool]]:
    """The sort keys of ``order_by``, each with whether it is descending; empty for the default order
    (ascending entry id)."""
    keys: list[tuple[Callable[[StepEntry], Any], bool]] = []
    for part in order_by.split(","):
        words = part.split()
        if not words:
            continue
        key = _ORDER_FIELDS.get(words[0].lower())
        if key is None or len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise gexc.InvalidArgument(f"invalid orderBy {order_by!r}")
        keys.append((key, len(words) == 2 and words[1].lower() == "desc"))
    if keys and keys[0][0] is _ORDER_FIELDS["entryid"] and not keys[0][1]:
        return []  # entry ids are unique: nothing after them matters
    return keys


def _comparison(field: str, op: str, value: str) -> Callable[[Any], bool]:
    name = field.lower()
    get = _FILTER_FIELDS.get(name)
    if get is None:
        raise gexc.InvalidArgument(f"invalid filter: field {field!r} is not supported")
    wanted: Any = value
    if name in ("entryid", "parent"):
        try:
            wanted = int(value)
        except ValueError:
            raise gexc.InvalidArgument(f"invalid filter: {field} takes a number, not {value!r}") from None
    elif name in ("createtime", "updatetime"):
        wanted = parse_time(value)
    elif name in ("state", "steptype"):
        prefix = "STATE_" if name == "state" else "STEP_"
        wanted = value.upper() if value.upper().startswith(prefix) else prefix + value.upper()
    return compare_with(get, op, wanted)
