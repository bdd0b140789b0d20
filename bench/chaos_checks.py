"""The checks of a chaos run against the participants' own records, and its report."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from bench.chaos_plan import TRIP, Killer, Planned
from bench.chaos_results import ResultLog
from devstack.stack import PARTICIPANTS, LocalStack

if TYPE_CHECKING:
    from bench.chaos import ChaosConfig

DONE = {"flight": "booked", "hotel": "reserved", "payment": "charged"}
UNDONE = {"flight": "cancelled", "hotel": "released", "payment": "refunded"}


def check(
    planned: Sequence[Planned],
    results: Mapping[str, Mapping[str, Mapping[str, Any]]],
    journals: Mapping[str, Sequence[Mapping[str, Any]]],
    resources: Mapping[str, Mapping[str, Mapping[str, Any]]],
) -> dict[str, dict[str, Any]]:
    """Each property (see the module docstring) with ``ok`` and the saga ids that break it. ``results``:
    saga -> ce-id -> result; ``journals`` and ``resources``: by service, as the participants list them."""
    ours = {p.saga_id for p in planned}
    missing = sorted(s for s in ours if not results.get(s))
    duplicated = sorted(s for s in ours if len(results.get(s, {})) > 1)
    twice, late, refused = _journal_checks(ours, journals)
    statuses = {s: _status(results[s]) for s in ours if results.get(s)}
    left_in_place, not_done = _resource_checks(ours, statuses, resources)
    return {
        "one_result_per_saga": {
            "ok": not missing and not duplicated,
            "missing": missing,
            "duplicated": duplicated,
        },
        "no_effect_twice": {"ok": not twice, "sagas": twice},
        "no_execute_after_compensation": {"ok": not late, "sagas": late, "late_executes_refused": refused},
        "compensated_sagas_fully_undone": {"ok": not left_in_place, "sagas": left_in_place},
        "succeeded_sagas_fully_done": {"ok": not not_done, "sagas": not_done},
    }


def _journal_checks(
    ours: set[str], journals: Mapping[str, Sequence[Mapping[str, Any]]]
) -> tuple[list[str], list[str], int]:
    """From the participants' journals: the sagas with an effect applied twice, those with an execute
    applied after its step's compensation, and how many late executes the barrier refused."""
    applied: Counter[tuple[str, str, str, str]] = Counter()
    refused = 0  # executes that came after their compensation, refused by the barrier
    first_compensation: dict[tuple[str, str, str], int] = {}
    executes: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for service, entries in journals.items():
        for entry in entries:
            saga, step, action = str(entry["saga_id"]), str(entry["step"]), str(entry["action"])
            if saga not in ours:
                continue
            pair = (service, saga, step)
            refused += action == "execute" and str(entry.get("outcome", "")).startswith("refused")
            if entry["effect"]:
                applied[(service, saga, step, action)] += 1
                if action == "execute":
                    executes[pair].append(int(entry["seq"]))
            if action == "compensate":
                first_compensation.setdefault(pair, int(entry["seq"]))
    twice = sorted({key[1] for key, count in applied.items() if count > 1})
    late = sorted(
        {
            pair[1]
            for pair, seqs in executes.items()
            if pair in first_compensation and max(seqs) > first_compensation[pair]
        }
    )
    return twice, late, refused


def _resource_checks(
    ours: set[str], statuses: Mapping[str, str], resources: Mapping[str, Mapping[str, Mapping[str, Any]]]
) -> tuple[list[str], list[str]]:
    """From the participants' resources: the compensated sagas that left one in place, and the
    succeeded ones that did not leave all three."""
    by_saga: dict[str, list[tuple[str, str]]] = defaultdict(list)  # saga -> (service, status)
    for service, items in resources.items():
        for item in items.values():
            if item.get("saga_id") in ours:
                by_saga[str(item["saga_id"])].append((service, str(item["status"])))
    left_in_place = sorted(
        s
        for s, status in statuses.items()
        if status == "compensated" and any(state != UNDONE[svc] for svc, state in by_saga[s])
    )
    not_done = sorted(
        s
        for s, status in statuses.items()
        if status == "succeeded"
        and sorted(by_saga[s]) != sorted((service, DONE[service]) for _, service in TRIP)
    )
    return left_in_place, not_done


def _spread(values: list[float]) -> dict[str, float]:
    """Median, 99th percentile and maximum, in seconds."""
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 3),
        "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
        "max": round(ordered[-1], 3),
    }


def _retried(result: Mapping[str, Any]) -> int:
    return sum(
        1
        for step in result.get("steps") or []
        for key in ("execute", "compensate")
        if isinstance(step.get(key), dict) and int(step[key].get("attempts") or 1) > 1
    )


def _status(results: Mapping[str, Mapping[str, Any]]) -> str:
    """The status of a saga's (first) result; ``"<a>+<b>"`` when its results disagree."""
    found = sorted({str(result.get("status")) for result in results.values()})
    return "+".join(found)


# --- the report ----------------------------------------------------------------------------------------


def run_report(
    stack: LocalStack,
    config: ChaosConfig,
    planned: list[tuple[Planned, dict[str, Any]]],
    published: dict[str, float],
    log: ResultLog,
    killer: Killer,
    started: float,
    seconds: dict[str, float],
) -> dict[str, Any]:
    """The report of a run (see ``bench.chaos``): its mix, the statuses, the kills and the checks, with the
    story of each broken saga and of the slowest."""
    with log.changed:
        results = {s: dict(log.results.get(s, {})) for s in published}
        deliveries, notices = log.deliveries, dict(log.notices)
    journals = {service: stack.participant(service, "journal") for service in PARTICIPANTS}
    resources = {service: stack.participant(service, "state")["resources"] for service in PARTICIPANTS}
    checks = check([p for p, _ in planned], results, journals, resources)
    latency = _latency(published, log.arrived, started)
    slowest = sorted(latency, key=latency.__getitem__, reverse=True)[:3]

    def story(saga_id: str) -> dict[str, Any]:
        return _story(saga_id, planned, published, results, killer.log, log.arrived, started)

    return {
        "sagas": len(planned),
        "seed": config.seed,
        "mix": _mix(planned),
        "statuses": _statuses(results),
        "unexpected_status": _unexpected(planned, results),
        # Actions that needed more than one attempt (a kill cut a call, a participant was down, ...).
        "actions_retried": _actions_retried(results),
        "result_deliveries": deliveries,
        "latency_seconds": _spread(list(latency.values())),
        "notices": notices,
        **_kills(killer),
        **kills_amid_sagas(killer.log, _lives(published, log.arrived, started)),
        "seconds": seconds,
        "checks": checks,
        "ok": all(c["ok"] for c in checks.values()) and not killer.failures,
        "broken": [story(s) for s in _broken(checks)[:20]],
        "slowest": [story(s) for s in slowest],
        "kill_log": killer.log,
    }


def _mix(planned: Sequence[tuple[Planned, dict[str, Any]]]) -> dict[str, int]:
    return {
        "declined": sum(p.declined for p, _ in planned),
        "slow_calls": sum(p.slow is not None for p, _ in planned),
    }


def _latency(
    published: Mapping[str, float], arrived: Mapping[str, float], started: float
) -> dict[str, float]:
    """Each answered saga's seconds from its publication to its first result."""
    return {s: arrived[s] - started - at for s, at in published.items() if s in arrived}


def _actions_retried(results: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> int:
    """The actions, over every saga's first result, that needed more than one attempt."""
    return sum(_retried(next(iter(r.values()))) for r in results.values() if r)


def _statuses(results: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """How many sagas came out with each status (``"none"``: no result)."""
    statuses = Counter(_status(r) if r else "none" for r in results.values())
    return dict(sorted(statuses.items()))


def _unexpected(
    planned: Sequence[tuple[Planned, dict[str, Any]]], results: Mapping[str, Mapping[str, Any]]
) -> dict[str, int]:
    """How many sagas came out other than their request asks, by ``"<expected>-><status>"``."""
    unexpected = Counter(
        f"{p.expected}->{_status(results[p.saga_id]) if results[p.saga_id] else 'none'}"
        for p, _ in planned
        if not results[p.saga_id] or _status(results[p.saga_id]) != p.expected
    )
    return dict(sorted(unexpected.items()))


def _kills(killer: Killer) -> dict[str, Any]:
    """The kills by process, how many, the longest restart and the restarts that failed."""
    return {
        "kills": dict(sorted(Counter(entry["process"] for entry in killer.log).items())),
        "kills_total": len(killer.log),
        "restart_seconds_max": max((e.get("down_seconds", 0.0) for e in killer.log), default=0.0),
        "restart_failures": killer.failures,
    }


def _lives(
    published: Mapping[str, float], arrived: Mapping[str, float], started: float
) -> dict[str, tuple[float, float]]:
    """Each saga's life in seconds after the start: from its publication to its first result (without
    one: forever)."""
    return {s: (at, arrived[s] - started if s in arrived else float("inf")) for s, at in published.items()}


def kills_amid_sagas(
    kills: Sequence[Mapping[str, Any]], lives: Mapping[str, tuple[float, float]]
) -> dict[str, int]:
    """Whether the kills hit running sagas, not an idle stack: the kills made while at least one saga was
    between its publication and its first result, and the sagas that lived through at least one kill."""
    moments = sorted(float(k["at"]) for k in kills)
    amid = sum(any(begin <= at <= end for begin, end in lives.values()) for at in moments)
    through = sum(any(begin <= at <= end for at in moments) for begin, end in lives.values())
    return {"kills_amid_sagas": amid, "sagas_through_a_kill": through}


def _broken(checks: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every saga a check names."""
    return sorted(
        {s for c in checks.values() for key in ("missing", "duplicated", "sagas") for s in c.get(key, [])}
    )


def _story(
    saga_id: str,
    planned: Sequence[tuple[Planned, dict[str, Any]]],
    published: Mapping[str, float],
    results: Mapping[str, Mapping[str, Any]],
    kills: Sequence[Mapping[str, Any]],
    arrived: Mapping[str, float],
    started: float,
) -> dict[str, Any]:
    """What a reproduction needs about one broken saga: its plan, its results, the kills in its life."""
    item = next(p for p, _ in planned if p.saga_id == saga_id)
    begin = published.get(saga_id, 0.0)
    end = arrived[saga_id] - started if saga_id in arrived else float("inf")
    return {
        "saga_id": saga_id,
        "declined": item.declined,
        "slow": item.slow,
        "published_at": round(begin, 3),
        "first_result_at": None if end == float("inf") else round(end, 3),
        "results": [
            {"ce-id": k, "status": v.get("status"), "cause": v.get("cause")}
            for k, v in results[saga_id].items()
        ],
        # The kills from its publication to its first result (without one: the next minute).
        "kills_meanwhile": [k for k in kills if begin - 1 <= k["at"] <= min(end, begin + 60)],
    }
