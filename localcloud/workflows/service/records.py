"""What the Workflows emulator keeps: a deployed workflow with its revisions, and executions.

Every execution sits in two indexes of its workflow: by id (oldest first) and by (label key, value), which
``ListExecutions`` with ``labels.KEY="VALUE"`` reads instead of scanning every execution. An
``ExecutionRecord`` has ``__slots__``: tens of thousands of them may be parked at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from google.cloud.workflows.executions_v1.types import executions as ex

from localcloud.workflows.engine.history import StepHistory

State = ex.Execution.State


@dataclass(frozen=True)
class Revision:
    revision_id: str
    source: str
    service_account: str
    user_env_vars: Mapping[str, str]
    created_at: float
    program: Any


@dataclass
class WorkflowRecord:
    name: str
    workflow_id: str
    project_id: str
    location: str
    description: str
    labels: dict[str, str]
    call_log_level: int
    created_at: float
    updated_at: float
    execution_history_level: int = 0  # ExecutionHistoryLevel: DETAILED records variables
    revisions: list[Revision] = field(default_factory=list)  # oldest first
    executions: dict[str, ExecutionRecord] = field(default_factory=dict)  # id -> record, oldest first
    # (label key, value) -> {id: record}, oldest first: ListExecutions with labels.KEY="VALUE" reads this
    by_label: dict[tuple[str, str], dict[str, ExecutionRecord]] = field(default_factory=dict)

    def add_execution(self, record: ExecutionRecord) -> None:
        self.executions[record.execution_id] = record
        for pair in record.labels.items():
            self.by_label.setdefault(pair, {})[record.execution_id] = record

    def remove_execution(self, record: ExecutionRecord) -> None:
        self.executions.pop(record.execution_id, None)
        for pair in record.labels.items():
            same = self.by_label.get(pair)
            if same is not None:
                same.pop(record.execution_id, None)
                if not same:
                    del self.by_label[pair]

    @property
    def latest(self) -> Revision:
        return self.revisions[-1]


class ExecutionRecord:
    __slots__ = (
        "argument",
        "call_log_level",
        "ended_at",
        "error",
        "execution_id",
        "history",
        "labels",
        "meter",
        "name",
        "result",
        "revision_id",
        "seq",
        "started_at",
        "state",
        "task",
        "workflow",
    )

    def __init__(
        self,
        *,
        name: str,
        execution_id: str,
        workflow: str,
        revision_id: str,
        argument: str,
        labels: dict[str, str],
        call_log_level: int,
        started_at: float,
        seq: int,
    ) -> None:
        self.name = name
        self.execution_id = execution_id
        self.workflow = workflow
        self.revision_id = revision_id
        self.argument = argument
        self.labels = labels
        self.call_log_level = call_log_level
        self.started_at = started_at
        self.seq = seq  # the order of creation, across workflows
        self.state: int = State.ACTIVE
        self.ended_at: float | None = None
        self.result: str | None = None
        self.error: ex.Execution.Error | None = None
        self.meter: Any = None
        self.history: StepHistory | None = None  # its step entries
        self.task: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        return self.state == State.ACTIVE

    def billable_steps(self) -> dict[str, int]:
        """Billable steps under the per-step reading (``engine/metering.py``)."""
        internal = int(getattr(self.meter, "internal", 0) or 0)
        external = int(getattr(self.meter, "external", 0) or 0)
        return {"internal": internal, "external": external, "total": internal + external}

    def billable_steps_per_assignment(self) -> dict[str, int]:
        """Billable steps under the per-assignment reading (each assign entry and ``result:`` one)."""
        internal = int(getattr(self.meter, "assignment_internal", 0) or 0)
        external = int(getattr(self.meter, "assignment_external", 0) or 0)
        return {"internal": internal, "external": external, "total": internal + external}

    def current_step(self) -> tuple[str, str] | None:
        current = getattr(self.meter, "current", None)
        if isinstance(current, tuple) and len(current) == 2:
            return (str(current[0]), str(current[1]))
        return None
