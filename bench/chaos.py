"""Chaos (issue #18): sagas run while the functions and the participants are killed with SIGKILL at random
moments and restarted on the same port; the emulators stay up (they stand for Google's durable services).

    python -m bench.chaos [--sagas 1000] [--seed 7] [--json FILE]

The stack is ``devstack``'s, on free ports, with the demo participants keeping their state in SQLite files
(``--state-dir``), as a real participant keeps it in its database, so a killed participant restarts with
what it had committed. Requests are a seeded mix of 3-step trips (flight, hotel, payment): happy ones and
ones whose payment is declined (they compensate), some with slow participant calls (``simulate`` SUCCESS
with ``seconds``, before the effect or after it, with the answer not yet sent) so that kills land
mid-call. They are published ``in_flight`` at a time while a killer thread picks, at random gaps, one of
``start_saga``, ``step_executor``, ``saga_completion``, ``saga_sweeper`` or a participant, kills its whole
process group (``ManagedProcess.kill``) and restarts it (``ManagedProcess.restart``), one at a time,
until every saga has its result or none has come for ``quiet_seconds``.

Then every result is awaited on a subscription of ``saga-results`` made before the first publish, and
checked against the participants' own records (``GET /_control/journal``: every business decision, kept
in the same transaction as the effect; ``GET /_control/state``: the resources):

- ``one_result_per_saga``: every saga has a result, and one only (two ``ce-id`` for one saga is two
  results; a redelivery of one ``ce-id`` is not);
- ``no_effect_twice``: no (service, saga, step, action) changed business state twice;
- ``no_execute_after_compensation``: no execute took effect after its step's compensation was decided
  (a compensation that found nothing to undo included);
- ``compensated_sagas_fully_undone``: a ``compensated`` saga left no resource in place;
- ``succeeded_sagas_fully_done``: a ``succeeded`` saga left its three resources in place.

A saga whose status is not the one its request asks for (a happy one that compensated because a
participant stayed down through every retry, say) is counted (``unexpected_status``), not failed: the
properties above are what must hold whatever the kills did. The report (JSON on stdout; with ``--json
FILE`` also merged into FILE under ``chaos``) names each broken saga with the kills during its life, for
a reproduction with the same ``--seed`` (the request mix repeats; the moments of the kills do not).
Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.chaos_checks import run_report
from bench.chaos_plan import Killer, Planned, plan
from bench.chaos_results import Flight, ResultLog
from bench.saga import Publisher
from devstack.processes import FUNCTION_SIGNATURES
from devstack.settings import DeploymentSettings
from devstack.stack import PARTICIPANTS, LocalStack

TARGETS = (*FUNCTION_SIGNATURES, *(f"participant-{service}" for service in PARTICIPANTS))
# A stuck compensation waits this long for an operator here (deployment.env: a week), so a run ends.
STUCK_DECISION_SECONDS = 60
# A kill of start_saga between a claim and its record leaves the saga id held until the takeover; far
# below the default 600 s (functions here are never slow to create an execution), so a run ends in time.
START_TAKEOVER_SECONDS = 15


@dataclass(frozen=True)
class ChaosConfig:
    sagas: int = 1000
    seed: int = 0
    in_flight: int = 60  # sagas published and not yet answered, at most (a slot frees after slot_timeout)
    slot_timeout: float = 30.0
    rate: float | None = None  # sagas published per second, at most (None: as the slots allow)
    kill_gap: tuple[float, float] = (0.2, 2.0)  # seconds between a restart and the next kill
    declined_share: float = 0.3
    slow_share: float = 0.3  # sagas with one slow participant call
    slow_seconds: tuple[float, float] = (0.2, 1.5)
    # After the last publish. Generous: a start_saga killed between its claim of the saga id and the
    # execution's creation leaves a claim that a redelivery takes over only after 10 minutes.
    result_timeout: float = 900.0
    quiet_seconds: float = 30.0  # the kills stop when no result has come for this long
    # At least this long for the sagas still running when the kills stop: a request whose deliveries met a
    # killed start_saga again and again waits out Eventarc's doubling backoff (10 s, 20 s, ... up to 600 s).
    after_kills_timeout: float = 300.0
    settle_seconds: float = 10.0  # after the last result, for late duplicates
    targets: tuple[str, ...] = TARGETS


# --- a run ---------------------------------------------------------------------------------------------


def run(stack: LocalStack, config: ChaosConfig, *, echo: Any = None) -> dict[str, Any]:
    """Publish, kill, wait, check (see the module docstring); the report."""
    run_id = f"{random.getrandbits(24):06x}"
    planned = plan(stack.participant_urls, config, run_id)
    log = ResultLog(stack)
    flight = Flight(log, config.in_flight)
    started = time.monotonic()
    killer = Killer(stack, config.targets, config.kill_gap, config.seed + 1, started=started, echo=echo)
    flight.start()
    killer.start()
    try:
        publish_seconds = _publish(stack, config, planned, flight, started, killer, echo)
        # The kills go on while results come: until every saga has its result, the bound passes, or
        # none has come for ``quiet_seconds`` (the rest are stalled, not slowed down by the kills).
        deadline = time.monotonic() + config.result_timeout
        log.wait_all(flight.published, deadline, quiet=config.quiet_seconds)
    finally:
        killer.stop()
    kills_done = time.monotonic() - started
    log.wait_all(flight.published, max(deadline, time.monotonic() + config.after_kills_timeout))
    last = max(log.arrived.values(), default=time.monotonic())
    time.sleep(max(0.0, last + config.settle_seconds - time.monotonic()))
    flight.stop()
    seconds = {
        "publishing": round(publish_seconds, 1),
        "killing": round(kills_done, 1),
        "total": round(time.monotonic() - started, 1),
    }
    log.close()
    return run_report(stack, config, planned, flight.published, log, killer, started, seconds)


def _publish(
    stack: LocalStack,
    config: ChaosConfig,
    planned: list[tuple[Planned, dict[str, Any]]],
    flight: Flight,
    started: float,
    killer: Killer,
    echo: Any,
) -> float:
    """Publish every planned request (at ``config.rate`` when set, within the in-flight bound); the
    seconds it took."""
    publisher = Publisher(stack)
    for index, (item, request) in enumerate(planned):
        if config.rate:
            time.sleep(max(0.0, started + index / config.rate - time.monotonic()))
        flight.take(item.saga_id, time.monotonic() - started, config.slot_timeout)
        publisher.publish(request)
        if echo is not None and (index + 1) % 100 == 0:
            print(f"published {index + 1}/{len(planned)}, kills {len(killer.log)}", file=echo, flush=True)
    return time.monotonic() - started


def launch(log_dir: Path, state_dir: Path, *, echo: Any = None) -> LocalStack:
    """The stack of a chaos run: participants with their state in ``state_dir``, a stuck compensation
    deciding after ``STUCK_DECISION_SECONDS``, a crashed start taken over after ``START_TAKEOVER_SECONDS``."""
    settings = DeploymentSettings.load().with_values(
        {
            "SAGA_STUCK_DECISION_SECONDS": str(STUCK_DECISION_SECONDS),
            # A start_saga killed between its claim and its record holds the saga id this long.
            "SAGA_START_TAKEOVER_SECONDS": str(START_TAKEOVER_SECONDS),
        }
    )
    return LocalStack.launch(
        settings=settings, log_dir=log_dir, participant_state_dir=state_dir, ready_timeout=90.0, echo=echo
    )


def write_json(path: Path, report: Mapping[str, Any]) -> None:
    """``report`` under ``chaos`` in the JSON object of ``path``, its other keys kept (created if missing)."""
    existing: dict[str, Any] = {}
    if path.exists():
        existing = json.loads(path.read_text(encoding="utf-8"))
    existing["chaos"] = report
    path.write_text(json.dumps(existing, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sagas", type=int, default=ChaosConfig.sagas)
    parser.add_argument("--seed", type=int, default=ChaosConfig.seed)
    parser.add_argument("--in-flight", type=int, default=ChaosConfig.in_flight)
    parser.add_argument("--rate", type=float, help="sagas published per second, at most")
    parser.add_argument("--json", type=Path, help="also merge the report into this file, under 'chaos'")
    parser.add_argument("--log-dir", type=Path, help="the processes' logs (default: a new temporary folder)")
    args = parser.parse_args(argv)
    config = ChaosConfig(sagas=args.sagas, seed=args.seed, in_flight=args.in_flight, rate=args.rate)
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="chaos-logs-"))
    with tempfile.TemporaryDirectory(prefix="chaos-state-") as state_dir:
        print(f"starting the stack (logs: {log_dir})", file=sys.stderr, flush=True)
        stack = launch(log_dir, Path(state_dir))
        try:
            report = run(stack, config, echo=sys.stderr)
        finally:
            stack.stop()
    print(json.dumps(report, indent=2))
    if args.json is not None:
        write_json(args.json, report)
    for name, outcome in report["checks"].items():
        print(f"{'PASS' if outcome['ok'] else 'FAIL'} {name}", file=sys.stderr)
    print(f"logs: {log_dir}", file=sys.stderr)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
