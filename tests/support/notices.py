"""A notice as the saga workflow posts it to saga_completion (a saga stuck on an undo), for tests."""

from __future__ import annotations

from typing import Any

EXECUTION = "projects/local-project/locations/us-central1/workflows/saga-orchestrator/executions/9b1f"


def stuck_notice(**changes: Any) -> dict[str, Any]:
    """What the workflow POSTs when the compensation of reserve_hotel failed for good."""
    return {
        "notice": "stuck",
        "saga_id": "trip-42",
        "execution": EXECUTION,
        "step": "reserve_hotel",
        "action": "compensate",
        "error": {"kind": "business", "status_code": 409, "message": "no such reservation"},
        "verbs": ["retry", "skip"],
        "until": "2026-12-13T10:00:00.000Z",
        "sequence": 1,
        "at": "2026-12-06T10:00:00.000Z",
        "metadata": {"order": "o-1"},
        **changes,
    }
