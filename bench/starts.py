"""The start rate under Google's quotas: the highest rate of saga starts the stack holds for a window (60 s;
``--quick`` 10 s) without one Executions API call refused with 429.

The stack of ``python -m bench`` runs with ``LOCALCLOUD_QUOTAS=google`` (``QUOTAS``: every quota at Google's
documented default, values and pages in ``localcloud.quotas``). A start is one Executions *create* call and
no *list* call, so of those quotas only "Execution API write requests", 6,000 a minute per location (100 a
second), bounds it; the ladder of ``RATES`` climbs past that. Each step publishes one-step saga requests at
its rate (open loop, paced) for the window and counts, from the emulators' ``/admin/quotas``, the
executions created inside the window and the Executions calls refused (create, list and get) until the
step's backlog is drained. A step is *held* when nothing was refused and the creates kept up (at least 95 %
of the rate); the climb stops at the first step that is not. The quota window is a rolling minute: a
``--quick`` step of 10 s cannot fill it below 600 starts a second, so the quick figure is bounded by the
machine, not by the quota.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bench.common import Figure
from localcloud.quotas import EXECUTIONS_CREATE, EXECUTIONS_GET, EXECUTIONS_LIST

if TYPE_CHECKING:
    from devstack.stack import LocalStack

QUOTAS = "google"
# Starts a second; 100/s is the create quota (6,000 a minute).
RATES = (40.0, 55.0, 70.0, 85.0, 95.0, 105.0)
KEPT_UP = 0.95
DRAIN_SECONDS = 60.0
_EXECUTIONS = (EXECUTIONS_CREATE, EXECUTIONS_LIST, EXECUTIONS_GET)


def one_step_request(urls: Mapping[str, str], saga_id: str) -> dict[str, Any]:
    """The cheapest real saga: one flight booking, with its compensation."""
    flight = urls["flight"]
    return {
        "saga_id": saga_id,
        "deadline_seconds": 3600,
        "metadata": {"bench": "starts"},
        "steps": [
            {
                "name": "book_flight",
                "execute": {
                    "url": f"{flight}/flight/book",
                    "payload": {
                        "from": "AMS",
                        "to": "LIS",
                        "date": "2026-12-18",
                        "passenger": "Ada Lovelace",
                    },
                },
                "compensate": {
                    "url": f"{flight}/flight/cancel",
                    "payload": {"booking_id": {"$ref": "steps.book_flight.output.booking_id"}},
                },
            }
        ],
    }


def executions_usage(stack: LocalStack) -> dict[str, dict[str, int]]:
    """Calls admitted and refused, by Executions quota, for the stack's project and location."""
    key = f"{stack.settings.project_id}/{stack.settings.location}"
    usage = stack.quota_report()["usage"]
    return {
        name: {
            "calls": int(usage.get(name, {}).get(key, {}).get("calls", 0)),
            "refused": int(usage.get(name, {}).get(key, {}).get("refused", 0)),
        }
        for name in _EXECUTIONS
    }


def _refused(before: Mapping[str, Mapping[str, int]], after: Mapping[str, Mapping[str, int]]) -> int:
    return sum(after[name]["refused"] - before[name]["refused"] for name in _EXECUTIONS)


def step(stack: LocalStack, rate: float, seconds: float) -> dict[str, Any]:
    """Publish one-step sagas at ``rate`` a second for ``seconds``; what was created and refused."""
    import json

    publisher = stack.factory.publisher()
    topic = f"projects/{stack.settings.project_id}/topics/{stack.settings.require('SAGA_REQUEST_TOPIC')}"
    run = secrets.token_hex(3)
    before = executions_usage(stack)
    count = int(rate * seconds)
    futures = []
    started = time.monotonic()
    for index in range(count):
        pause = started + index / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        request = one_step_request(stack.participant_urls, f"bench-start-{run}-{index}")
        futures.append(publisher.publish(topic, json.dumps(request).encode("utf-8")))
    published_in = time.monotonic() - started
    time.sleep(max(0.0, started + seconds - time.monotonic()))
    at_window_end = executions_usage(stack)
    for future in futures:
        future.result(timeout=60)
    deadline = time.monotonic() + DRAIN_SECONDS
    after = at_window_end
    while after[EXECUTIONS_CREATE]["calls"] - before[EXECUTIONS_CREATE]["calls"] < count:
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
        after = executions_usage(stack)
    created_in_window = at_window_end[EXECUTIONS_CREATE]["calls"] - before[EXECUTIONS_CREATE]["calls"]
    refused = _refused(before, after)
    achieved = created_in_window / seconds
    return {
        "rate_per_s": rate,
        "seconds": seconds,
        "published": count,
        "publish_seconds": round(published_in, 2),
        "created_in_window": created_in_window,
        "created_per_s": round(achieved, 2),
        "created_after_drain": after[EXECUTIONS_CREATE]["calls"] - before[EXECUTIONS_CREATE]["calls"],
        "refused_429": refused,
        "list_calls": after[EXECUTIONS_LIST]["calls"] - before[EXECUTIONS_LIST]["calls"],
        "held": refused == 0 and achieved >= KEPT_UP * rate,
    }


def run(stack: LocalStack, *, seconds: float, rates: tuple[float, ...] = RATES) -> dict[str, Any]:
    """Climb ``rates`` until a step is not held; the highest held, with every step and the quotas used.
    The sweeper's timer is stopped first: it lists ended executions once a period, and the list calls
    counted here must be the starts' (run this section last)."""
    if stack.sweep_timer is not None:
        stack.sweep_timer.stop()
    steps = []
    best: float | None = None
    for rate in rates:
        result = step(stack, rate, seconds)
        steps.append(result)
        if not result["held"]:
            break
        best = rate
    return {
        "max_rate_no_429_per_s": best,
        "window_seconds": seconds,
        "bounded_by": _bound(steps),
        "steps": steps,
        "quotas": stack.quota_report()["limits"],
    }


def _bound(steps: list[dict[str, Any]]) -> str:
    last = steps[-1] if steps else None
    if last is None or last["held"]:
        return "not reached: every step held"
    if last["refused_429"]:
        return "the Executions quotas (429)"
    return "the machine (creates fell behind the rate without a 429)"


def figures(section: Mapping[str, Any]) -> list[Figure]:
    create = section["quotas"].get(EXECUTIONS_CREATE, "off")
    steps = ", ".join(
        f"{s['rate_per_s']:g}/s→{s['created_per_s']:g}/s"
        + (f" {s['refused_429']}×429" if s["refused_429"] else "")
        + ("" if s["held"] else " ✘")
        for s in section["steps"]
    )
    best = section["max_rate_no_429_per_s"]
    lists = sum(s["list_calls"] for s in section["steps"])
    return [
        Figure(
            "8 starts",
            f"start rate held {section['window_seconds']:.0f} s with no 429 (create quota {create})",
            best,
            "starts/s",
            "",
            None,
            f"bounded by {section['bounded_by']}; steps: {steps}",
        ),
        Figure("8 starts", "Executions list calls while starting", lists, "calls", "0", lists == 0),
    ]
