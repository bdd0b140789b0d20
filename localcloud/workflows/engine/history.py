"""The step entries of one execution, recorded as the interpreter runs it: what the Executions API's
``stepEntries.list`` and ``stepEntries.get`` answer
(https://cloud.google.com/workflows/docs/reference/executions/rest/v1/projects.locations.workflows.executions.stepEntries,
https://cloud.google.com/workflows/docs/debug-steps).

- An entry opens IN_PROGRESS when its step (or block part) starts and closes once: SUCCEEDED (also when
  it leaves by ``next``, ``return``, ``break`` or ``continue``), FAILED with the error, or CANCELLED.
  ``update_time`` is the time of the last change.
- Entry ids count from 1 in the order entries open, across the threads of parallel branches.
- ``parent`` is the entry one "steps out" to (the enclosing block part, or the step that called the
  subworkflow). The other links (``previous``/``next`` between the entries of one parent, ``children``)
  follow from the parents and are worked out when asked for (``structure``, once per new entry), not
  while the execution runs; so is the thread of an entry (that of the parallel branch it runs under).
- Memory is bounded: an execution keeps its newest ``max_entries`` entries (100,000 by default, the
  number of steps an execution may run, https://cloud.google.com/workflows/quotas); older ones are
  dropped oldest first, a tenth at a time, and links to them lead nowhere.
- Expected iterations and variables (``variableData``: every variable in scope when a step ends, as
  JSON, bytes in base64) are recorded only at the DETAILED history level ("If you want the execution
  history to include any in-scope variable values ... set the execution history level to Detailed").
  Variables may weigh 512 KB a step, so an execution records at most ``max_variable_bytes`` of them
  (16 MB by default); later entries go without.

Recording is on the interpreter's hot path, so the entries are kept as rows of one flat list (``STRIDE``
plain values each: no object per entry, nothing for the garbage collector to track) and an entry is
known by its id; the rare extras (an error, a thread, variables) sit in a dict by id. A closed entry
costs about 125 bytes (measured with tracemalloc); opening one is one ``list.extend``, closing it two
stores. Readers get ``StepEntry`` views, made when asked for.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from localcloud.clock import Clock, SystemClock
from localcloud.workflows.engine.scope import Scope

IN_PROGRESS = "STATE_IN_PROGRESS"
SUCCEEDED = "STATE_SUCCEEDED"
FAILED = "STATE_FAILED"
CANCELLED = "STATE_CANCELLED"

PROGRESS_FOR = "PROGRESS_TYPE_FOR"
PROGRESS_SWITCH = "PROGRESS_TYPE_SWITCH"
PROGRESS_RETRY = "PROGRESS_TYPE_RETRY"
PROGRESS_PARALLEL_FOR = "PROGRESS_TYPE_PARALLEL_FOR"
PROGRESS_PARALLEL_BRANCH = "PROGRESS_TYPE_PARALLEL_BRANCH"

MAX_ENTRIES_PER_EXECUTION = 100_000
MAX_VARIABLE_BYTES_PER_EXECUTION = 16 * 1024 * 1024

# a row: routine, step, step type, create time, update time, state, parent id (0: none), progress type,
# progress number
_ROUTINE, _STEP, _TYPE, _CREATED, _UPDATED, _STATE, _PARENT, _PROGRESS, _NUMBER = range(9)
STRIDE = 9


class Extra:
    """What few entries have."""

    __slots__ = ("error", "expected_iteration", "thread_id", "variables")

    def __init__(self) -> None:
        self.error: Any = None  # the error's payload, once FAILED
        self.expected_iteration: int | None = None  # at the DETAILED level
        self.thread_id: str | None = None  # set on the entry that starts a parallel branch's thread
        self.variables: str | None = None  # a JSON object, at the DETAILED level


@dataclass(slots=True)
class StepEntry:
    """One entry, as readers see it."""

    entry_id: int
    routine: str
    step: str
    step_type: str
    create_time: float
    update_time: float
    state: str
    parent: int | None
    progress_type: str | None
    progress_number: int | None
    thread_id: str | None
    expected_iteration: int | None
    error: Any
    variables: str | None


class StepHistory:
    """The entries of one execution. Use from the event loop's thread."""

    __slots__ = (
        "_extras",
        "_first_id",
        "_rows",
        "_structure",
        "clock",
        "detailed",
        "last_id",
        "max_entries",
        "max_variable_bytes",
        "now",
        "variable_bytes",
    )

    def __init__(
        self,
        clock: Clock,
        *,
        detailed: bool = False,
        max_entries: int = MAX_ENTRIES_PER_EXECUTION,
        max_variable_bytes: int = MAX_VARIABLE_BYTES_PER_EXECUTION,
    ) -> None:
        self.clock = clock
        # the system clock's ``now`` is ``time.time``: read it without the extra call
        self.now: Callable[[], float] = time.time if isinstance(clock, SystemClock) else clock.now
        self.detailed = detailed
        self.max_entries = max_entries
        self.max_variable_bytes = max_variable_bytes
        self.variable_bytes = 0
        self.last_id = 0
        self._rows: list[Any] = []  # the rows of ids _first_id, _first_id + 1, ...
        self._first_id = 1
        self._extras: dict[int, Extra] = {}
        self._structure: Structure | None = None

    def __len__(self) -> int:
        return len(self._rows) // STRIDE

    def open(
        self,
        routine: str,
        step: str,
        step_type: str,
        parent: int,
        progress: str | None = None,
        number: int | None = None,
    ) -> int:
        """A new entry, IN_PROGRESS, under ``parent`` (0: none); returns its id."""
        self.last_id = entry_id = self.last_id + 1
        now = self.now()
        rows = self._rows
        rows.extend((routine, step, step_type, now, now, IN_PROGRESS, parent, progress, number))
        if len(rows) > self.max_entries * STRIDE:
            self._drop_oldest()
        return entry_id

    def close(self, entry_id: int, state: str, error: Any = None) -> None:
        """Ends the entry in ``state`` (FAILED with the error's payload); one already ended stays."""
        at = (entry_id - self._first_id) * STRIDE
        rows = self._rows
        if at >= 0 and rows[at + _STATE] is IN_PROGRESS:
            rows[at + _STATE] = state
            rows[at + _UPDATED] = self.now()
            if error is not None:
                self.extra(entry_id).error = error

    def extra(self, entry_id: int) -> Extra:
        found = self._extras.get(entry_id)
        if found is None:
            found = self._extras[entry_id] = Extra()
        return found

    def thread_id(self, entry_id: int) -> str | None:
        """The thread of the parallel branch the entry runs under; None in the main thread."""
        while entry_id >= self._first_id:
            extra = self._extras.get(entry_id)
            if extra is not None and extra.thread_id is not None:
                return extra.thread_id
            entry_id = self._rows[(entry_id - self._first_id) * STRIDE + _PARENT]
        return None

    def record_variables(self, entry_id: int, scope: Scope) -> None:
        """Keeps the variables visible from ``scope`` on the entry, while the byte budget lasts."""
        if self.variable_bytes >= self.max_variable_bytes:
            return
        chain: list[Scope] = []
        current: Scope | None = scope
        while current is not None:
            chain.append(current)
            current = current.parent
        visible: dict[str, Any] = {}
        for each in reversed(chain):  # inner variables hide outer ones
            visible.update(each.vars)
        text = json.dumps(visible, separators=(",", ":"), ensure_ascii=False, default=_jsonable)
        if self.variable_bytes + len(text) <= self.max_variable_bytes:
            self.extra(entry_id).variables = text
        self.variable_bytes += len(text)

    def cancel_open(self) -> None:
        """Ends every entry still in progress as CANCELLED (the execution was cancelled)."""
        now = self.now()
        rows = self._rows
        for at in range(0, len(rows), STRIDE):
            if rows[at + _STATE] is IN_PROGRESS:
                rows[at + _STATE] = CANCELLED
                rows[at + _UPDATED] = now

    def clear(self) -> None:
        """Forgets every entry (ids keep counting): ``executions.deleteExecutionHistory`` does this."""
        self._first_id = self.last_id + 1
        self._rows = []
        self._extras = {}

    def ids(self) -> range:
        """The ids of the entries kept, oldest first."""
        return range(self._first_id, self.last_id + 1)

    def get(self, entry_id: int) -> StepEntry | None:
        if not self._first_id <= entry_id <= self.last_id:
            return None
        return self._view(entry_id, self.structure().threads)

    def entries(self, ids: Iterable[int] | None = None) -> list[StepEntry]:
        """The entries of ``ids`` (every entry kept, by default), as views."""
        threads = self.structure().threads
        return [self._view(entry_id, threads) for entry_id in (self.ids() if ids is None else ids)]

    def structure(self) -> Structure:
        """The links and threads of the entries kept; worked out once for each new entry opened."""
        key = (self._first_id, self.last_id)
        if self._structure is None or self._structure.key != key:
            parents = self._rows[_PARENT::STRIDE]
            self._structure = Structure(key, parents, self._extras)
        return self._structure

    def _view(self, entry_id: int, threads: dict[int, str]) -> StepEntry:
        at = (entry_id - self._first_id) * STRIDE
        row = self._rows[at : at + STRIDE]
        extra = self._extras.get(entry_id) or _NO_EXTRA
        return StepEntry(
            entry_id=entry_id,
            routine=row[_ROUTINE],
            step=row[_STEP],
            step_type=row[_TYPE],
            create_time=row[_CREATED],
            update_time=row[_UPDATED],
            state=row[_STATE],
            parent=row[_PARENT] or None,
            progress_type=row[_PROGRESS],
            progress_number=row[_NUMBER],
            thread_id=threads.get(entry_id),
            expected_iteration=extra.expected_iteration,
            error=extra.error,
            variables=extra.variables,
        )

    def _drop_oldest(self) -> None:
        dropped = max(1, self.max_entries // 10)
        del self._rows[: dropped * STRIDE]
        self._first_id += dropped
        self._extras = {k: v for k, v in self._extras.items() if k >= self._first_id}


_NO_EXTRA = Extra()


class Structure:
    """What follows from the parents: ``links`` (previous and next among the entries of one parent, in
    the order they opened; children) and ``threads`` (the thread of each entry under a parallel branch)."""

    __slots__ = ("key", "links", "threads")

    def __init__(self, key: tuple[int, int], parents: list[int], extras: dict[int, Extra]) -> None:
        self.key = key
        first = key[0]
        self.links: dict[int, Links] = {}
        self.threads: dict[int, str] = {}
        last: dict[int, int] = {}  # parent id (0: none) -> its latest child so far
        for entry_id, parent in enumerate(parents, first):
            links = self.links[entry_id] = Links()
            before = last.get(parent)
            if before is not None:
                self.links[before].next = entry_id
                links.previous = before
            last[parent] = entry_id
            if parent >= first:
                self.links[parent].children.append(entry_id)
            extra = extras.get(entry_id)
            thread = extra.thread_id if extra is not None else None
            if thread is None and parent in self.threads:
                thread = self.threads[parent]
            if thread is not None:
                self.threads[entry_id] = thread


class Links:
    __slots__ = ("children", "next", "previous")

    def __init__(self) -> None:
        self.previous: int | None = None
        self.next: int | None = None
        self.children: list[int] = []


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return str(value)
