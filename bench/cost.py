"""List-price cost per million sagas on Google Cloud, from the counts the local cloud measured, beside the
same saga on AWS Step Functions Standard.

Workflows steps are counted by the local engine under both readings of Google's rule
(``localcloud/workflows/engine/metering.py``): one per step, and one per variable assignment (each
``assign`` entry and each ``result:``; https://cloud.google.com/workflows/pricing?hl=ja says each
assignment is a billable step, in one assign step or in several).

Per saga, on Google Cloud, besides the Workflows steps:
- Cloud Tasks: per action (an execute or a compensate), one CreateTask and one push delivery attempt per
  attempt the result records, each billed in 32 KB chunks of the task (its size measured when the real
  workflow created it on the engine);
- Pub/Sub: 4 message transfers (request published, pushed to start_saga, result published, delivered to
  one subscriber), each billed at max(size, 1,000 bytes);
- Cloud Run functions: invocations (start_saga 1, step_executor 1 per delivery attempt, saga_completion 1)
  at the request price, plus compute: the CPU seconds per saga measured in the
  throughput run, billed as vCPU-s and, for the deployed 512 MiB, GiB-s (request-based billing; instance
  time is at least the CPU time, so this is a lower bound).
Free tiers are ignored (at a million sagas a month they are a rounding error).

The same saga on Step Functions Standard, one state transition per state entered (retries count too,
none happen here), with each participant call a Task state that calls it and Catch edges into the undos.
For the bench's 3-step trip saga (book_flight_0, reserve_hotel_1, charge_payment_2):

    StartAt: book_flight_0
    book_flight_0     Task  Next reserve_hotel_1   Catch [States.ALL] -> Failed
    reserve_hotel_1   Task  Next charge_payment_2  Catch [States.ALL] -> cancel_flight_0
    charge_payment_2  Task  Next Succeeded         Catch [States.ALL] -> release_hotel_1
    release_hotel_1   Task  Next cancel_flight_0
    cancel_flight_0   Task  Next Compensated
    Succeeded         Succeed
    Compensated       Fail
    Failed            Fail

Happy: book, reserve, charge, Succeeded = 4 transitions. Payment declined: book, reserve, charge, release,
cancel, Compensated = 6. N steps: N + 1, and N + (N - 1) + 1 when the last one fails. Waiting costs
nothing there: a Task waiting on a task token (``.waitForTaskToken``) for an operator, or for a call that
something else retries, enters no state while it waits, so an hour of waiting is 0 transitions.

The design floor (``design_floor``): the floor of a call made through a Cloud Task whose outcome the
workflow awaits on a callback (the durable way, which every call took before the forward and backward
runs and which a call whose first attempt does not succeed still takes): one ``tasks.create`` (internal)
and one ``events.await_callback`` (external) per action, plus the two Cloud Tasks operations, with no fixed
steps at all. A saga whose first attempts all succeed spends none of it (``saga_orchestrator.forward``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

PRICES_READ_ON = "2026-12-06"

# Every price with its page and the day it was read there. The Workflows prices were read on
# 2026-11-25; the copy of the page read on 2026-12-06 (its English and Japanese editions) confirms the
# rules (internal and external steps, each retry, each assignment) but did not show the table again.
PRICES: dict[str, dict[str, Any]] = {
    "workflows_internal_step": {
        "usd": 0.01 / 1000,
        "unit": "internal step ($0.01 per 1,000)",
        "source": "https://cloud.google.com/workflows/pricing",
        "read_on": "2026-11-25",
    },
    "workflows_external_step": {
        "usd": 0.025 / 1000,
        "unit": "external step ($0.025 per 1,000)",
        "source": "https://cloud.google.com/workflows/pricing",
        "read_on": "2026-11-25",
    },
    "cloud_tasks_operation": {
        "usd": 0.40 / 1_000_000,
        "unit": "billable operation, per 32 KB chunk ($0.40 per million; API call or push attempt)",
        "source": "https://cloud.google.com/tasks/pricing",
        "read_on": "2026-12-06",
    },
    "pubsub_throughput_byte": {
        "usd": 40.0 / 2**40,
        "unit": "byte of throughput ($40 per TiB, at least 1,000 bytes per request)",
        "source": "https://cloud.google.com/pubsub/pricing",
        "read_on": "2026-12-06",
    },
    "cloud_run_request": {
        "usd": 0.40 / 1_000_000,
        "unit": "function invocation ($0.40 per million requests)",
        "source": "https://cloud.google.com/run/pricing (Cloud Run functions: https://cloud.google.com/functions/pricing)",
        "read_on": "2026-12-06",
    },
    "cloud_run_vcpu_second": {
        "usd": 0.000024,
        "unit": "vCPU-second, request-based billing, tier 1",
        "source": "https://cloud.google.com/run/pricing",
        "read_on": "2026-12-06",
    },
    "cloud_run_gib_second": {
        "usd": 0.0000025,
        "unit": "GiB-second, request-based billing, tier 1",
        "source": "https://cloud.google.com/run/pricing",
        "read_on": "2026-12-06",
    },
    "step_functions_standard_transition": {
        "usd": 0.025 / 1000,
        "unit": "state transition ($0.025 per 1,000, retries included), Standard workflows",
        "source": "https://aws.amazon.com/step-functions/pricing/",
        "read_on": "2026-12-06",
    },
}

FUNCTION_MEMORY_GIB = 0.5  # DEPLOY_FUNCTION_MEMORY=512Mi in deployment.env
TASK_CHUNK_BYTES = 32 * 1024
READINGS = ("per_step", "per_assignment")


def _usd(key: str) -> float:
    return float(PRICES[key]["usd"])


def actions(steps: int, compensating: bool) -> int:
    return 2 * steps - 1 if compensating else steps


def step_functions_transitions(steps: int, compensating: bool) -> int:
    """The state machine in the module docstring, for ``steps`` steps (the last one failing when
    ``compensating``)."""
    return (steps + (steps - 1) + 1) if compensating else steps + 1


def workflows_usd(billable: Mapping[str, int]) -> float:
    return billable["internal"] * _usd("workflows_internal_step") + billable["external"] * _usd(
        "workflows_external_step"
    )


def task_chunks(task_bytes: list[int]) -> int:
    """32 KB chunks of each task (at least one each)."""
    return sum(max(1, math.ceil(size / TASK_CHUNK_BYTES)) for size in task_bytes)


def design_floor(count: int) -> dict[str, float]:
    """The design floor for ``count`` actions, in USD under each reading: per action a ``tasks.create``
    (internal) and an ``events.await_callback`` (external), plus, counting each assignment, the stored
    answer (the await's ``result:``; the create's result is not needed, the task name being
    deterministic); and the task's two Cloud Tasks operations."""
    internal, external = _usd("workflows_internal_step"), _usd("workflows_external_step")
    tasks = 2 * _usd("cloud_tasks_operation")
    return {
        "per_step": count * (internal + external + tasks),
        "per_assignment": count * (2 * internal + external + tasks),
    }


def _other_gcp(shape: Mapping[str, Any], cpu: Mapping[str, float]) -> tuple[dict[str, float], dict[str, int]]:
    """Every GCP line item but Workflows, per saga, in USD; and the counts they come from."""
    chunks = task_chunks(list(shape["task_bytes"]))
    attempts = int(shape["delivery_attempts"])
    # Each push attempt is billed in the chunks of its task; with no retries, one attempt per task.
    operations = chunks + math.ceil(attempts * chunks / max(1, len(shape["task_bytes"])))
    pubsub_bytes = 2 * max(1000, int(shape["request_bytes"])) + 2 * max(1000, int(shape["result_bytes"]))
    invocations = 2 + attempts
    cpu_seconds = cpu["per_saga"] + cpu["per_action"] * attempts
    usd = {
        "cloud_tasks": operations * _usd("cloud_tasks_operation"),
        "pubsub": pubsub_bytes * _usd("pubsub_throughput_byte"),
        "function_invocations": invocations * _usd("cloud_run_request"),
        "function_compute": cpu_seconds
        * (_usd("cloud_run_vcpu_second") + FUNCTION_MEMORY_GIB * _usd("cloud_run_gib_second")),
    }
    counts = {
        "tasks_created": len(shape["task_bytes"]),
        "task_bytes_max": max(shape["task_bytes"], default=0),
        "cloud_tasks_operations": operations,
        "pubsub_billed_bytes": pubsub_bytes,
        "function_invocations": invocations,
    }
    return usd, counts


def per_saga(shape: Mapping[str, Any], cpu: Mapping[str, float]) -> dict[str, Any]:
    """``shape``: one measured saga (see ``bench.saga.cost_shapes``); ``cpu``: ``per_saga``
    (start_saga + saga_completion) and ``per_action`` (step_executor) seconds."""
    steps = int(shape["steps"])
    compensating = bool(shape["compensating"])
    billable = {"per_step": shape["billable"], "per_assignment": shape["billable_per_assignment"]}
    other, counts = _other_gcp(shape, cpu)
    others = sum(other.values())
    transitions = step_functions_transitions(steps, compensating)
    floor = design_floor(int(shape["actions"]))
    return {
        "per_step_usd_per_million": round(workflows_usd(billable["per_step"]) * 1e6, 2),
        "per_assignment_usd_per_million": round(workflows_usd(billable["per_assignment"]) * 1e6, 2),
        "step_functions_usd_per_million": round(
            transitions * _usd("step_functions_standard_transition") * 1e6, 2
        ),
        "step_functions_transitions": transitions,
        "billable_steps": {reading: dict(billable[reading]) for reading in READINGS},
        "billable_steps_per_saga_step": {
            reading: round(billable[reading]["total"] / steps, 2) for reading in READINGS
        },
        "other_gcp_usd_per_million": {k: round(v * 1e6, 2) for k, v in other.items()},
        "gcp_total_usd_per_million": {
            reading: round((workflows_usd(billable[reading]) + others) * 1e6, 2) for reading in READINGS
        },
        "design_floor_usd_per_million": {reading: round(floor[reading] * 1e6, 2) for reading in READINGS},
        "counts": {"actions": int(shape["actions"]), **counts},
    }


def per_waiting_hour(hour: Mapping[str, Any]) -> dict[str, Any]:
    """An hour of waiting, per saga (``bench.saga.waiting_hours``): the Workflows steps it costs under both
    readings; nothing else is billed while a workflow waits (no task, invocation or message), and on Step
    Functions a task-token wait enters no state."""
    billable = {"per_step": hour["per_step"], "per_assignment": hour["per_assignment"]}
    return {
        "per_step_usd_per_million": round(workflows_usd(billable["per_step"]) * 1e6, 2),
        "per_assignment_usd_per_million": round(workflows_usd(billable["per_assignment"]) * 1e6, 2),
        "step_functions_usd_per_million": 0.0,
        "step_functions_transitions": 0,
        "billable_steps": billable,
        "what": hour["what"],
        "hours_measured": hour["hours"],
    }


# Names in results.json (fixed; scripts read them): the saga shape measured and its key under "cost".
HEADLINES = {"happy_3step": "3_happy", "compensating_3step": "3_compensating"}


def table(
    shapes: Mapping[str, Mapping[str, Any]],
    waiting: Mapping[str, Mapping[str, Any]],
    cpu_ms_per_saga: Mapping[str, float],
    actions_per_saga: float,
) -> dict[str, Any]:
    """``cpu_ms_per_saga`` is by process name from the throughput run (``actions_per_saga`` actions per saga
    on average there); only the functions are billed. ``waiting``: name → one hour measured."""
    functions_cpu = {
        "per_saga": (cpu_ms_per_saga.get("start_saga", 0.0) + cpu_ms_per_saga.get("saga_completion", 0.0))
        / 1000.0,
        "per_action": cpu_ms_per_saga.get("step_executor", 0.0) / 1000.0 / actions_per_saga,
    }
    priced = {name: per_saga(shape, functions_cpu) for name, shape in shapes.items()}
    out: dict[str, Any] = {
        "prices": PRICES,
        "prices_read_on": PRICES_READ_ON,
        "function_cpu_seconds_per_saga": functions_cpu,
        "shapes": priced,
    }
    for key, shape in HEADLINES.items():
        if shape in priced:
            out[key] = priced[shape]
    for key, hour in waiting.items():
        out[key] = per_waiting_hour(hour)
    return out
