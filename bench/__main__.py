"""``python -m bench [--quick]``: every figure of the benchmark with its target beside it; writes
``bench/results.json``. The full run holds the throughput window for 60 s and takes 3–6 minutes
on two cores; ``--quick`` holds it for 10 s and runs smaller samples (a smoke run, not the figures)."""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bench import starts
from bench.common import Figure, git_commit, machine, utc_now

RESULTS = Path(__file__).with_name("results.json")
# The stack of the saga groups: Google's default quotas but "Execution API write requests", whose 6,000 a
# minute per location cap one location at 100 saga starts a second. The throughput group measures what
# the machine sustains, above that; the starts group measures the quota itself, on a stack of its own
# with every default (a deployment past 100 sagas a second asks for more quota or spreads its sagas over
# locations).
SAGA_QUOTAS = f"{starts.QUOTAS},workflows.executions.create=off"


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _guard(name: str, errors: dict[str, str], body: Callable[[], Any]) -> Any:
    print(f"[bench] {name} …", file=sys.stderr, flush=True)
    started = time.monotonic()
    try:
        value = body()
    except Exception as error:  # a failed section is reported, the others still run
        errors[name] = f"{type(error).__name__}: {error}"
        traceback.print_exc()
        return None
    print(f"[bench] {name} done in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    return value


def _top(mapping: dict[str, float], count: int = 3) -> str:
    ordered = sorted(mapping.items(), key=lambda item: -item[1])[:count]
    return ", ".join(f"{k} {v:.1f}" for k, v in ordered)


def _hot(profile: dict[str, Any] | None, count: int = 3) -> str:
    if not profile or not profile.get("self"):
        return ""
    frames = [f"{row['frame']} {row['share']:.0%}" for row in profile["self"][:count]]
    return "; hottest (py-spy self): " + ", ".join(frames)


def _latency_figures(lat: dict[str, Any]) -> list[Figure]:
    out: list[Figure] = []
    three = lat["steps_3"]
    phases = lat.get("steps_3_phases_median_ms", {})
    where = ", ".join(f"{k} {v:.1f} ms" for k, v in phases.items())
    out.append(
        Figure(
            "1 latency",
            "3-step saga, median",
            three["median"],
            "ms",
            "≤ 30 ms",
            three["median"] <= 30,
            f"median phases: {where}",
        )
    )
    out.append(Figure("1 latency", "3-step saga, p99", three["p99"], "ms"))
    out.append(Figure("1 latency", "1-step saga, median", lat["steps_1"]["median"], "ms"))
    out.append(Figure("1 latency", "10-step saga, median", lat["steps_10"]["median"], "ms"))
    per = lat["per_extra_step_ms"]
    out.append(
        Figure(
            "1 latency",
            "per extra step ((10-step − 1-step)/9)",
            per,
            "ms",
            "≤ 5 ms",
            per <= 5,
            "per action, median ms: "
            + ", ".join(
                f"{k} {v}" for k, v in (lat.get("action_split_median_ms") or {}).items() if k != "actions"
            ),
        )
    )
    return out


def _throughput_figures(tp: dict[str, Any]) -> list[Figure]:
    out: list[Figure] = []
    rate = tp["sagas_per_second"]
    out.append(
        Figure(
            "2 throughput",
            f"3-step sagas/s ({tp['window_seconds']:.0f} s, {tp['in_flight']} in flight, "
            "1 in 5 compensating)",
            rate,
            "sagas/s",
            "≥ 100",
            rate >= 100,
            "CPU ms per saga by process: "
            + _top(tp["cpu_ms_per_saga_by_process"], 4)
            + _hot((tp.get("profile") or {}).get("localcloud")),
        )
    )
    out.append(
        Figure(
            "2 throughput",
            "lost sagas",
            tp["lost"],
            "",
            "0",
            tp["lost"] == 0,
            f"wrong outcome: {tp['wrong_outcome']}",
        )
    )
    out.append(Figure("2 throughput", "latency under load, median", tp["latency_ms"].get("median"), "ms"))
    out.append(Figure("2 throughput", "latency under load, p99", tp["latency_ms"].get("p99"), "ms"))
    return out


def _scale_figures(sc: dict[str, Any]) -> list[Figure]:
    out: list[Figure] = []
    out.append(
        Figure(
            "3 scale",
            f"peak RSS, {sc['executions']:,} parked executions",
            sc["peak_rss_mb"],
            "MB",
            "≤ 500 MB",
            sc["peak_rss_mb"] <= 500,
            f"{sc['per_parked_execution_kb']} KB per parked execution",
        )
    )
    out.append(
        Figure(
            "3 scale",
            "time to park them all",
            sc["park_seconds"],
            "s",
            "",
            None,
            f"{sc['parked_confirmed']:,} confirmed waiting",
        )
    )
    out.append(
        Figure(
            "3 scale",
            "drain when callbacks arrive",
            sc["drain_per_second"],
            "exec/s",
            "≥ 1,000/s",
            (sc["drain_per_second"] or 0) >= 1000,
            f"{sc['succeeded']:,} succeeded in {sc['drain_seconds']} s",
        )
    )
    return out


def _peer_figures(pe: dict[str, Any]) -> list[Figure]:
    out: list[Figure] = []
    out.append(
        Figure("4 engine vs peer", f"ours, {pe['steps']:,} steps", pe["ours_steps_per_second"], "steps/s")
    )
    out.append(Figure("4 engine vs peer", f"{pe['peer']}", pe["peer_steps_per_second"], "steps/s"))
    out.append(Figure("4 engine vs peer", "ratio", pe["ratio"], "×", "≥ 10×", pe["ratio"] >= 10))
    return out


def _pubsub_figures(ps: dict[str, Any]) -> list[Figure]:
    out: list[Figure] = []
    out.append(
        Figure("5 Pub/Sub", "publish, 1 KB, while streaming pull runs", ps["publish_per_second"], "msg/s")
    )
    out.append(
        Figure(
            "5 Pub/Sub",
            f"end to end, ≤ {ps['max_ahead']:,} in flight (publish → streaming pull → ack)",
            ps["end_to_end_per_second"],
            "msg/s",
            "≥ 10,000",
            ps["end_to_end_per_second"] >= 10000,
            f"{ps['lost']} lost, {ps['duplicates']} duplicates; CPU ms/message: emulator "
            f"{ps['emulator_cpu_ms_per_message']}, publisher {ps['publisher_cpu_ms_per_message']}, "
            f"subscriber {ps['subscriber_cpu_ms_per_message']} (2 cores allow "
            f"{ps['cpu_bound_per_second']:,}/s)"
            + (("; profiled rerun" + _hot(ps.get("emulator_profile"))) if ps.get("emulator_profile") else ""),
        )
    )
    default = ps.get("default_scheduler")
    if default:
        out.append(
            Figure(
                "5 Pub/Sub",
                "end to end, the subscriber's default thread-pool scheduler",
                default["end_to_end_per_second"],
                "msg/s",
            )
        )
    backlog = ps.get("backlog")
    if backlog:
        out.append(
            Figure(
                "5 Pub/Sub",
                f"publish only, {backlog['messages']:,} messages",
                backlog["publish_only_per_second"],
                "msg/s",
            )
        )
        out.append(
            Figure(
                "5 Pub/Sub",
                f"drain a backlog of {backlog['messages']:,} (streaming pull → ack)",
                backlog["drain_per_second"],
                "msg/s",
            )
        )
    return out


# The keys of results.json's top-level "cost" (fixed names, read by scripts: cost.happy_3step.
# per_step_usd_per_million, .per_assignment_usd_per_million, .step_functions_usd_per_million, and the
# same for the others), each with its label in the table.
COST_ROWS = {
    "happy_3step": "happy 3-step",
    "compensating_3step": "3-step, compensating",
    "parked_hour": "1 h parked",
    "retrying_call_hour": "1 h on a retried call",
}


def _cost_row_figures(label: str, row: dict[str, Any]) -> list[Figure]:
    """One saga (or hour) in $ per million: Workflows under each reading against Step Functions."""
    aws = row["step_functions_usd_per_million"]
    steps = row["billable_steps"]
    out = []
    for reading, words in (("per_step", "one per step"), ("per_assignment", "one per assignment")):
        counted = steps[reading]
        out.append(
            Figure(
                "6 cost",
                f"{label}: Workflows, {words}",
                row[f"{reading}_usd_per_million"],
                "$/M",
                f"< SF {aws:,.2f}",
                row[f"{reading}_usd_per_million"] < aws,
                f"{counted['total']:g} billable steps ({counted['internal']:g} internal, "
                f"{counted['external']:g} external)",
            )
        )
    out.append(
        Figure(
            "6 cost",
            f"{label}: Step Functions Standard",
            aws,
            "$/M",
            "",
            None,
            f"{row['step_functions_transitions']} state transitions",
        )
    )
    return out


def _cost_figures(co: dict[str, Any]) -> list[Figure]:
    out: list[Figure] = []
    for key, label in COST_ROWS.items():
        row = co.get(key)
        if not row:
            continue
        out.extend(_cost_row_figures(label, row))
        other = row.get("other_gcp_usd_per_million")
        if other:
            items = ", ".join(f"{k} {v}" for k, v in other.items())
            for reading, words in (("per_step", "one per step"), ("per_assignment", "one per assignment")):
                total = row["gcp_total_usd_per_million"][reading]
                name = f"{label}: all GCP line items, {words}"
                out.append(Figure("6 cost", name, total, "$/M", "", None, items))
    for name, shape in co.get("shapes", {}).items():
        per = shape["billable_steps_per_saga_step"]
        out.append(
            Figure(
                "6 cost",
                f"{name}: billable steps per saga step",
                per["per_step"],
                "steps",
                "≤ 5",
                per["per_step"] <= 5,
                f"per assignment {per['per_assignment']}; {shape['billable_steps']}",
            )
        )
    if "marginal_steps_per_saga_step" in co:
        m = co["marginal_steps_per_saga_step"]
        out.append(
            Figure(
                "6 cost",
                "marginal billable steps per extra saga step (10 vs 1)",
                m,
                "steps",
                "≤ 5",
                m <= 5,
            )
        )
    return out


def _cost_notes(co: dict[str, Any]) -> list[str]:
    """What each cost row counted, for the report under the table."""
    lines = []
    for key, label in COST_ROWS.items():
        row = co.get(key)
        if not row:
            continue
        steps = row["billable_steps"]
        line = (
            f"  {label}: Workflows {row['per_step_usd_per_million']:,.2f} (one per step, "
            f"{steps['per_step']['total']:g} steps) / {row['per_assignment_usd_per_million']:,.2f} "
            f"(one per assignment, {steps['per_assignment']['total']:g}); Step Functions Standard "
            f"{row['step_functions_usd_per_million']:,.2f} ({row['step_functions_transitions']} transitions)"
        )
        if row.get("other_gcp_usd_per_million"):
            total = row["gcp_total_usd_per_million"]
            items = ", ".join(f"{k} {v:,.2f}" for k, v in row["other_gcp_usd_per_million"].items())
            line += (
                f"\n    + {items} → every GCP line item {total['per_step']:,.2f} / {total['per_assignment']:,.2f}"
                f"\n    counts: {row['counts']}"
            )
        lines.append(line)
    return lines


def _coldstart_figures(cs: dict[str, Any]) -> list[Figure]:
    out: list[Figure] = []
    for name, entry in cs.items():
        imp = entry["import_ms_median_of_3"]
        heavy = ", ".join(f"{r['module']} {r['cumulative_ms']:.0f}" for r in entry["top_imports"][:4])
        out.append(
            Figure(
                "7 cold start",
                f"{name}: import of the function (create_app)",
                imp,
                "ms",
                "≤ 300 ms",
                imp <= 300,
                f"cumulative ms: {heavy}",
            )
        )
        out.append(
            Figure(
                "7 cold start",
                f"{name}: functions-framework's own import",
                entry["framework_import_ms_median_of_3"],
                "ms",
            )
        )
        out.append(
            Figure(
                "7 cold start",
                f"{name}: process start → first real request answered",
                entry["first_answer_ms"],
                "ms",
            )
        )
    return out


# The sections of ``results.json``'s details, in the order of their figures.
SECTIONS: tuple[tuple[str, Callable[[dict[str, Any]], list[Figure]]], ...] = (
    ("latency", _latency_figures),
    ("throughput", _throughput_figures),
    ("scale", _scale_figures),
    ("peer", _peer_figures),
    ("pubsub", _pubsub_figures),
    ("cost", _cost_figures),
    ("coldstart", _coldstart_figures),
    ("starts", starts.figures),
)


def figures(data: dict[str, Any]) -> list[Figure]:
    out: list[Figure] = []
    for key, section_figures in SECTIONS:
        section = data.get(key)
        if section:
            out.extend(section_figures(section))
    return out


def render(rows: list[Figure]) -> str:
    lines = [f"{'':<18} {'figure':<62} {'value':>10} {'unit':<8} {'target':<14} ok"]
    for row in rows:
        mark = "" if row.met is None else ("✔" if row.met else "✘")
        lines.append(
            f"{row.section:<18} {row.name[:62]:<62} {_fmt(row.value):>10} {row.unit:<8} {row.target[:14]:<14} {mark}"
        )
        if row.note and row.met is False:
            lines.append(f"{'':<18}   ↳ {row.note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10 s throughput window and small samples")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--only",
        default="saga,scale,peer,pubsub",
        help="comma-separated groups: saga (1, 2, 6, 7, 8), cost (6 alone, without the functions' CPU), "
        "scale (3), peer (4), pubsub (5), starts (8 alone: the start rate under Google's quotas)",
    )
    args = parser.parse_args(argv)
    groups = set(args.only.split(","))
    started = time.monotonic()
    data: dict[str, Any] = {}
    errors: dict[str, str] = {}
    if "saga" in groups or "cost" in groups:
        _run_stack(data, errors, quick=args.quick, cost_only="saga" not in groups)
    elif "starts" in groups:
        _run_starts(data, errors, quick=args.quick)
    if "scale" in groups:
        from bench import scale

        data["scale"] = _guard("scale: 10,000 parked executions", errors, lambda: scale.run(10_000))
    if "peer" in groups:
        from bench import peer

        data["peer"] = _guard("engine vs workflows-emulator", errors, lambda: peer.run(quick=args.quick))
    if "pubsub" in groups:
        from bench import pubsub

        data["pubsub"] = _guard("Pub/Sub emulator throughput", errors, lambda: pubsub.run(quick=args.quick))
    return _report(args, data, errors, started)


def _report(args: argparse.Namespace, data: dict[str, Any], errors: dict[str, str], started: float) -> int:
    """Write ``results.json`` and print every figure; the exit status (1 when a section failed)."""
    rows = figures({k: v for k, v in data.items() if v})
    machine_info = machine()
    report: dict[str, Any] = {
        "machine": machine_info,
        "date": utc_now(),
        "commit": git_commit(),
        "mode": "quick" if args.quick else "full",
        "seconds": round(time.monotonic() - started, 1),
        "figures": [row.to_dict() for row in rows],
        "details": data,
        "errors": errors,
    }
    if data.get("cost"):
        report["cost"] = {key: data["cost"][key] for key in COST_ROWS if key in data["cost"]}
    report |= headline_keys(data)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    m = machine_info
    print(
        f"\nBenchmark ({report['mode']}) — {report['date']} — commit {report['commit'][:12]} — "
        f"{m['cpu_count']} CPUs ({m['cpu_model']}), {m['memory_mb']:,} MB, {m['platform']}"
    )
    print(render(rows))
    if data.get("cost"):
        print("\nCost per million sagas (USD, list prices):")
        print("\n".join(_cost_notes(data["cost"])))
        print(f"\nPrices (list, USD, read {data['cost']['prices_read_on']}):")
        for key, price in data["cost"]["prices"].items():
            print(f"  {key:<36} {price['unit']:<72} read {price['read_on']} {price['source']}")
    for name, error in errors.items():
        print(f"\n✘ {name} failed: {error}")
    print(f"\n{len(rows)} figures in {report['seconds']:.0f} s; written to {args.output}")
    return 1 if errors else 0


def headline_keys(data: Mapping[str, Any]) -> dict[str, Any]:
    """The fixed keys scripts read (``saga.throughput_per_s``, ``saga.latency_median_ms``,
    ``start.list_calls_per_saga``, ``start.max_rate_no_429_per_s``), from the sections that ran."""
    out: dict[str, Any] = {}
    saga: dict[str, Any] = {}
    if data.get("throughput"):
        saga["throughput_per_s"] = data["throughput"]["sagas_per_second"]
    if data.get("latency"):
        saga["latency_median_ms"] = data["latency"]["steps_3"]["median"]
    if saga:
        out["saga"] = saga
    starts_section = data.get("starts")
    if starts_section:
        steps = starts_section["steps"]
        created = sum(step["created_after_drain"] for step in steps)
        out["start"] = {
            **{k: starts_section[k] for k in ("max_rate_no_429_per_s", "window_seconds", "quotas")},
            "list_calls_per_saga": round(sum(step["list_calls"] for step in steps) / max(created, 1), 4),
        }
    return out


def _run_stack(data: dict[str, Any], errors: dict[str, str], *, quick: bool, cost_only: bool = False) -> None:
    """The groups that need the whole local cloud; ``cost_only``: group 6 alone (no throughput run, so the
    functions' compute is left out of the GCP line items)."""
    from bench import coldstart, saga
    from devstack.stack import LocalStack

    with LocalStack.start(quotas=SAGA_QUOTAS) as stack:
        results = saga.Results(stack)
        publisher = saga.Publisher(stack)
        try:
            if not cost_only:
                data["latency"] = _guard(
                    "saga latency", errors, lambda: saga.latency(stack, results, publisher, quick=quick)
                )
            shapes = _guard(
                "billable steps per saga shape", errors, lambda: saga.cost_shapes(stack, results, publisher)
            )
            if not cost_only:
                data["throughput"] = _guard(
                    "saga throughput",
                    errors,
                    lambda: saga.throughput(stack, results, publisher, seconds=10.0 if quick else 60.0),
                )
            waiting = _guard("an hour of waiting, on the engine", errors, lambda: saga.waiting_hours(stack))
            if shapes and (cost_only or data.get("throughput")):
                data["cost"] = _cost_table(shapes, waiting or {}, data.get("throughput"))
            if not cost_only:
                data["coldstart"] = _guard(
                    "function cold start", errors, lambda: coldstart.run(stack.function_environment())
                )
        finally:
            results.close()
    if not cost_only:
        _run_starts(data, errors, quick=quick)


def _starts(stack: Any, errors: dict[str, str], *, quick: bool) -> Any:
    seconds = 10.0 if quick else 60.0
    return _guard("start rate under Google's quotas", errors, lambda: starts.run(stack, seconds=seconds))


def _run_starts(data: dict[str, Any], errors: dict[str, str], *, quick: bool) -> None:
    from devstack.stack import LocalStack

    with LocalStack.start(quotas=starts.QUOTAS) as stack:
        data["starts"] = _starts(stack, errors, quick=quick)


def _cost_table(
    shapes: dict[str, Any], waiting: dict[str, Any], throughput: dict[str, Any] | None
) -> dict[str, Any]:
    from bench import cost

    cpu = (throughput or {}).get("cpu_ms_per_saga_by_process", {})
    table = cost.table(shapes, waiting, cpu, actions_per_saga=0.8 * 3 + 0.2 * 5)
    table["function_cpu_measured"] = bool(cpu)
    one = shapes["1_happy"]["billable"]["total"]
    ten = shapes["10_happy"]["billable"]["total"]
    table["marginal_steps_per_saga_step"] = round((ten - one) / 9, 2)
    return table


if __name__ == "__main__":
    sys.exit(main())
