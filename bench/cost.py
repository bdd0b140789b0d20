"""List-price cost per million sagas on Google Cloud, from the counts the local cloud measured, beside the
same saga shape on AWS Step Functions Standard.

Per saga, on Google Cloud:
- Workflows: the execution's billable steps (internal, external) from the engine's counters;
- Cloud Tasks: 2 billable operations per step action (CreateTask + one push delivery attempt; no retries
  in these sagas); an action is an execute or a compensate;
- Pub/Sub: 4 message transfers (request published, pushed to start_saga, result published, delivered to
  one subscriber), each billed at max(size, 1,000 bytes);
- Cloud Run functions: invocations (start_saga 1, step_executor 1 per action, saga_completion 1) at the
  request price, plus compute: the CPU seconds per saga measured in the throughput run, billed as vCPU-s
  and, for the deployed 512 MiB, GiB-s (request-based billing; instance time is at least the CPU time, so
  this is a lower bound).
Free tiers are ignored (at a million sagas a month they are a rounding error).

Step Functions Standard, same shape with the participants called from Task states: one transition per
state entered: happy N steps = N tasks + Succeed; failing at the last step = N tasks + (N-1) compensation
tasks + Fail.

The design floor: every call goes through a Cloud Task whose outcome the workflow awaits on a callback
(DESIGN: durable, deterministic retries), so no workflow can spend less than one ``tasks.create`` (internal)
and one ``events.await_callback`` (external) per action, plus the two Cloud Tasks operations; the floor is
that alone, with no fixed steps at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PRICES_READ_ON = "2026-11-25"

PRICES: dict[str, dict[str, Any]] = {
    "workflows_internal_step": {
        "usd": 0.01 / 1000,
        "unit": "internal step ($0.01 per 1,000)",
        "source": "https://cloud.google.com/workflows/pricing",
    },
    "workflows_external_step": {
        "usd": 0.025 / 1000,
        "unit": "external step ($0.025 per 1,000)",
        "source": "https://cloud.google.com/workflows/pricing",
    },
    "cloud_tasks_operation": {
        "usd": 0.40 / 1_000_000,
        "unit": "billable operation ($0.40 per million, 32 KB chunks)",
        "source": "https://cloud.google.com/tasks/pricing",
    },
    "pubsub_throughput_byte": {
        "usd": 40.0 / 2**40,
        "unit": "byte of throughput ($40 per TiB, at least 1,000 bytes per message)",
        "source": "https://cloud.google.com/pubsub/pricing",
    },
    "cloud_run_request": {
        "usd": 0.40 / 1_000_000,
        "unit": "function invocation ($0.40 per million requests)",
        "source": "https://cloud.google.com/run/pricing",
    },
    "cloud_run_vcpu_second": {
        "usd": 0.000024,
        "unit": "vCPU-second, request-based billing, tier 1",
        "source": "https://cloud.google.com/run/pricing",
    },
    "cloud_run_gib_second": {
        "usd": 0.0000025,
        "unit": "GiB-second, request-based billing, tier 1",
        "source": "https://cloud.google.com/run/pricing",
    },
    "step_functions_standard_transition": {
        "usd": 0.025 / 1000,
        "unit": "state transition ($0.025 per 1,000), Standard workflows",
        "source": "https://aws.amazon.com/step-functions/pricing/",
    },
}

FUNCTION_MEMORY_GIB = 0.5  # DEPLOY_FUNCTION_MEMORY=512Mi in deployment.env


def _usd(key: str) -> float:
    return float(PRICES[key]["usd"])


def actions(steps: int, compensating: bool) -> int:
    return 2 * steps - 1 if compensating else steps


def step_functions_transitions(steps: int, compensating: bool) -> int:
    return (steps + (steps - 1) + 1) if compensating else steps + 1


def per_saga(shape: Mapping[str, Any], cpu: Mapping[str, float]) -> dict[str, Any]:
    """``cpu``: ``per_saga`` (start_saga + saga_completion) and ``per_action`` (step_executor) seconds."""
    steps = int(shape["steps"])
    compensating = bool(shape["compensating"])
    billable = shape["billable"]
    count = actions(steps, compensating)
    workflows = billable["internal"] * _usd("workflows_internal_step") + billable["external"] * _usd(
        "workflows_external_step"
    )
    tasks = 2 * count * _usd("cloud_tasks_operation")
    pubsub_bytes = 2 * max(1000, int(shape["request_bytes"])) + 2 * max(1000, int(shape["result_bytes"]))
    pubsub = pubsub_bytes * _usd("pubsub_throughput_byte")
    invocations = 2 + count
    cpu_seconds = cpu["per_saga"] + cpu["per_action"] * count
    functions = (
        invocations * _usd("cloud_run_request")
        + cpu_seconds * _usd("cloud_run_vcpu_second")
        + cpu_seconds * FUNCTION_MEMORY_GIB * _usd("cloud_run_gib_second")
    )
    gcp = workflows + tasks + pubsub + functions
    floor = count * (_usd("workflows_internal_step") + _usd("workflows_external_step")) + tasks
    transitions = step_functions_transitions(steps, compensating)
    aws = transitions * _usd("step_functions_standard_transition")
    return {
        "billable_steps": dict(billable),
        "billable_steps_per_saga_step": round(billable["total"] / steps, 2),
        "billable_steps_per_action": round(billable["total"] / count, 2),
        "actions": count,
        "cloud_tasks_operations": 2 * count,
        "pubsub_billed_bytes": pubsub_bytes,
        "function_invocations": invocations,
        "usd_per_million": {
            "workflows": round(workflows * 1e6, 2),
            "cloud_tasks": round(tasks * 1e6, 2),
            "pubsub": round(pubsub * 1e6, 2),
            "functions": round(functions * 1e6, 2),
            "gcp_total": round(gcp * 1e6, 2),
            "step_functions_standard": round(aws * 1e6, 2),
            "design_floor": round(floor * 1e6, 2),
        },
        "step_functions_transitions": transitions,
    }


def table(
    shapes: Mapping[str, Mapping[str, Any]], cpu_ms_per_saga: Mapping[str, float], actions_per_saga: float
) -> dict[str, Any]:
    """``cpu_ms_per_saga`` is by process name from the throughput run (``actions_per_saga`` actions per saga
    on average there); only the functions are billed."""
    functions_cpu = {
        "per_saga": (cpu_ms_per_saga.get("start_saga", 0.0) + cpu_ms_per_saga.get("saga_completion", 0.0))
        / 1000.0,
        "per_action": cpu_ms_per_saga.get("step_executor", 0.0) / 1000.0 / actions_per_saga,
    }
    return {
        "prices": PRICES,
        "prices_read_on": PRICES_READ_ON,
        "function_cpu_seconds_per_saga": functions_cpu,
        "shapes": {name: per_saga(shape, functions_cpu) for name, shape in shapes.items()},
    }
