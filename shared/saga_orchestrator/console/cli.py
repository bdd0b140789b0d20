"""The ``saga`` command: start, list, show, watch and steer sagas, the same against the local cloud (its
``*_EMULATOR_HOST`` variables, as ``localcloud up`` prints them) and a Google Cloud project
(Application Default Credentials), through the APIs ``SagaOrchestrator`` uses.

Exit codes a script can use: 0 done; 1 the API refused or failed; 2 bad usage or an invalid request;
3 no such saga; 4 the verb does not apply to the saga now (it ended, it waits for no decision, it has
no such step).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import pathlib
import re
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any, TextIO, cast

from saga_orchestrator.attempts import attempts_section, read_attempts
from saga_orchestrator.clients import ClientFactory
from saga_orchestrator.console.timeline import render
from saga_orchestrator.errors import (
    InvalidRequestError,
    SagaError,
    SagaNotFoundError,
    SagaNotRunningError,
    VerbNotApplicableError,
)
from saga_orchestrator.sagas import SAGA_STATES, SagaView, StepProgress
from saga_orchestrator.settings import DEFAULTS, Settings
from saga_orchestrator.validation import validate_request
from saga_orchestrator.workflows.saga_orchestrator import SagaOrchestrator

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_NOT_APPLICABLE = 0, 1, 2, 3, 4
VERBS = ("retry", "skip", "compensate", "cancel", "terminate")
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
WATCH_POLL_SECONDS = 2.0
CONSOLE_PORT = 8765  # the web console's port unless --port says otherwise

EXAMPLES = {
    "start": "saga start examples/requests/trip-succeeds.json --saga-id trip-1001",
    "list": "saga list --status compensated --since 1h --json",
    "show": "saga show trip-1001",
    "watch": "saga watch",
    "retry": 'saga retry trip-1001 reserve_hotel --reason "the hotel service is back"',
    "skip": 'saga skip trip-1001 reserve_hotel --reason "released by phone"',
    "compensate": 'saga compensate trip-1001 --reason "no rooms this week"',
    "cancel": 'saga cancel trip-1001 --reason "customer called" --yes',
    "terminate": 'saga terminate trip-1001 --reason "stuck, looked at by ops"',
    "console": f"saga console --port {CONSOLE_PORT}  (then open http://127.0.0.1:{CONSOLE_PORT}/)",
    "certify": "saga certify --execute http://127.0.0.1:9001/flight/book --compensate http://127.0.0.1:9001/flight/cancel",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="saga",
        description="Start, list, show, watch and steer sagas (local cloud or Google Cloud).",
        epilog=(
            "exit codes: 0 done, 1 the API refused or failed, 2 bad usage or invalid request, "
            "3 no such saga, 4 the verb does not apply now. Example: " + EXAMPLES["show"]
        ),
    )
    parser.add_argument("--project", help="project id (default: $SAGA_PROJECT_ID, $GOOGLE_CLOUD_PROJECT)")
    parser.add_argument("--location", help="region of the saga workflow (default: $SAGA_LOCATION)")
    parser.add_argument("--workflow", help="name of the saga workflow (default: $SAGA_WORKFLOW)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name, help=help_text, description=help_text, epilog=f"example: {EXAMPLES[name]}"
        )

    command(
        "certify",
        "run the participant protocol's hard cases against any participant (see saga certify --help)",
    )
    start = command("start", "start a saga from a request file (JSON; - reads stdin)")
    start.add_argument("request", help="the saga request, as published on saga-requests")
    start.add_argument("--saga-id", help="the saga id (overrides the file's)")
    start.add_argument("--json", action="store_true", help="print JSON")
    listing = command("list", "list sagas, newest first")
    listing.add_argument("--status", choices=SAGA_STATES, help="only sagas in this state")
    listing.add_argument(
        "--since", help="started within this long (30s, 15m, 1h, 2d) or since an RFC 3339 time"
    )
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    show = command("show", "one saga: its state, its timeline, and what an undo would do now")
    show.add_argument("saga", help="saga id or execution name")
    show.add_argument("--json", action="store_true", help="print JSON")
    watch = command("watch", "print results as they arrive and a line per running saga; Ctrl-C stops")
    watch.add_argument("--json", action="store_true", help="print one JSON object per line")
    for verb, help_text, takes_step in (
        ("retry", "run again the action a stuck or parked saga waits on", True),
        ("skip", "record a stuck compensation as done by hand", True),
        ("compensate", "give a parked saga up: undo its done steps", False),
        ("cancel", "stop a saga and undo what it did", False),
        ("terminate", "stop a saga where it is, undoing nothing (effects stay in place)", False),
    ):
        sub = command(verb, help_text)
        sub.add_argument("saga", help="saga id or execution name")
        if takes_step:
            sub.add_argument("step", help="the step the saga waits on")
        sub.add_argument("--reason", required=True, help="why (recorded in the result's audit)")
        sub.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    console = command("console", "serve the web console: sagas, each one's timeline, the verbs; Ctrl-C stops")
    console.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    console.add_argument(
        "--port", type=int, default=CONSOLE_PORT, help=f"port (default {CONSOLE_PORT}; 0: a free one)"
    )
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    out: IO[str] | None = None,
    env: Mapping[str, str] | None = None,
    ask: Callable[[str], str] | None = None,
) -> int:
    out = out or sys.stdout
    env = os.environ if env is None else env
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["certify"]:  # its own options: saga certify --help lists them
        from saga_participant.certify import main as certify

        return certify(arguments[1:], cast("TextIO", out))
    args = build_parser().parse_args(arguments)
    try:
        orchestrator = _orchestrator(args, env)
        return int(COMMANDS[args.command](orchestrator, args, out, ask or _ask))
    except InvalidRequestError as error:
        print(f"saga {args.command}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except SagaNotFoundError as error:
        print(f"saga {args.command}: {error}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except (SagaNotRunningError, VerbNotApplicableError) as error:
        print(f"saga {args.command}: {error}", file=sys.stderr)
        return EXIT_NOT_APPLICABLE
    except (SagaError, OSError) as error:
        print(f"saga {args.command}: {error}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as error:  # an API error (google.api_core) or a transport failure
        print(f"saga {args.command}: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILED


def _orchestrator(args: argparse.Namespace, env: Mapping[str, str]) -> SagaOrchestrator:
    settings = Settings.from_env(env)
    project = (
        args.project
        or env.get("SAGA_PROJECT_ID")
        or env.get("GOOGLE_CLOUD_PROJECT")
        or DEFAULTS["SAGA_PROJECT_ID"]
    )
    location = args.location or settings.location
    workflow = args.workflow or settings.workflow
    return SagaOrchestrator(project, location, workflow, clients=ClientFactory(env), settings=settings)


def _ask(prompt: str) -> str:
    if not sys.stdin.isatty():
        return ""
    return input(prompt)


# --- commands --------------------------------------------------------------------------------------------


def cmd_start(orchestrator: SagaOrchestrator, args: argparse.Namespace, out: IO[str], ask: Any) -> int:
    text = sys.stdin.read() if args.request == "-" else pathlib.Path(args.request).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        print(f"saga start: {args.request} is not JSON: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.saga_id and isinstance(data, dict):
        data["saga_id"] = args.saga_id
    request = validate_request(data, orchestrator.settings)
    outcome = orchestrator.start(request)
    if args.json:
        _json(
            out, {"saga_id": request.saga_id, "execution": outcome.execution_name, "created": outcome.created}
        )
    else:
        verb = "started" if outcome.created else "was already started"
        print(f"saga {request.saga_id} {verb}: {outcome.execution_name}", file=out)
    return EXIT_OK


def cmd_list(orchestrator: SagaOrchestrator, args: argparse.Namespace, out: IO[str], ask: Any) -> int:
    since = parse_since(args.since) if args.since else None
    sagas = orchestrator.list_sagas(status=args.status, since=since, limit=args.limit)
    if args.json:
        _json(out, [_summary(view) for view in sagas])
        return EXIT_OK
    if not sagas:
        print("no sagas", file=out)
    for view in sagas:
        started = (view.start_time or "")[:19].replace("T", " ")
        print(
            f"{view.saga_id or '-':<36} {view.state:<12} {started:<19}  {_short(view.execution_name)}",
            file=out,
        )
    return EXIT_OK


def cmd_show(orchestrator: SagaOrchestrator, args: argparse.Namespace, out: IO[str], ask: Any) -> int:
    view, plan = orchestrator.read_saga(args.saga)
    env, project = orchestrator.clients.env, orchestrator.settings.project_id
    if args.json:
        _json(out, {**view.to_dict(), "undo_plan": plan, "attempts": _attempts_json(env, project, view)})
        return EXIT_OK
    print(show_text(view, plan), file=out)
    print(attempts_section(env, project, view.saga_id, since=view.start_time), file=out)
    return EXIT_OK


def _attempts_json(env: Mapping[str, str], project: str, view: SagaView) -> list[dict[str, Any]] | None:
    """Every attempt of the saga from the step executor's log; None when the log cannot be read."""
    if not view.saga_id:
        return None
    try:
        found = read_attempts(env, project, view.saga_id, since=view.start_time)
    except Exception:  # the rest of the view does not depend on Cloud Logging (text mode says why)
        return None
    return [dataclasses.asdict(attempt) for group in found.values() for attempt in group]


def show_text(view: SagaView, plan: list[dict[str, Any]]) -> str:
    """A saga as text: its timeline once it ended; its steps and undo plan while it runs."""
    head = f"saga {view.saga_id}: {view.state} (execution {view.execution_state}: {view.execution_name})"
    if not view.running and isinstance(view.result, Mapping) and "status" in view.result:
        return "\n".join([head, render(view.result, title="timeline of"), *map(_audit_line, view.audit)])
    lines = [head, f"  started {view.start_time or '?'}", *map(_step_line, view.steps)]
    if view.running and plan:
        lines.append("if it failed now, it would undo, in this order:")
        lines += [f"  {p['step']}: {p['method']} {p['url']} {json.dumps(p['payload'])}" for p in plan]
    elif view.running:
        lines.append("if it failed now, nothing to undo")
    return "\n".join(lines)


def _step_line(step: StepProgress) -> str:
    so_far = f"{step.attempts} attempt{'s' if step.attempts != 1 else ''} so far" if step.attempts else ""
    answer = f"last answer: {step.last_answer}" if step.last_answer else ""
    detail = ", ".join(part for part in (step.action or "", so_far, answer) if part)
    return f"  {step.status:<14} {step.name}" + (f"  ({detail})" if detail else "")


def cmd_watch(orchestrator: SagaOrchestrator, args: argparse.Namespace, out: IO[str], ask: Any) -> int:
    from google.cloud import pubsub_v1

    clients = orchestrator.clients
    subscriber = clients.subscriber()
    settings = orchestrator.settings
    subscription = f"projects/{settings.project_id}/subscriptions/saga-watch-{uuid.uuid4().hex[:12]}"
    subscriber.create_subscription(
        request={
            "name": subscription,
            "topic": settings.result_topic_path,
            # Left behind by a killed watch, it goes after a day of no use (the shortest TTL allowed).
            "expiration_policy": pubsub_v1.types.ExpirationPolicy(ttl={"seconds": 86400}),
        }
    )
    print(f"watching {settings.result_topic_path} (Ctrl-C stops)", file=out, flush=True)
    seen: dict[str, str] = {}
    # Ctrl-C ends the loop between calls: a KeyboardInterrupt raised inside a gRPC call could leave the
    # channel unable to delete the subscription afterwards.
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        while not stop.is_set():
            response = subscriber.pull(
                request={"subscription": subscription, "max_messages": 100}, timeout=30
            )
            for received in response.received_messages:
                _print_event(out, received.message, args.json)
            if response.received_messages:
                subscriber.acknowledge(
                    request={
                        "subscription": subscription,
                        "ack_ids": [r.ack_id for r in response.received_messages],
                    }
                )
            if not stop.is_set():
                _print_running(orchestrator, out, seen, args.json)
            stop.wait(0 if response.received_messages else WATCH_POLL_SECONDS)
        print("stopped", file=out, flush=True)
    finally:
        signal.signal(signal.SIGINT, previous)
        subscriber.delete_subscription(request={"subscription": subscription}, timeout=30)
    return EXIT_OK


def _print_event(out: IO[str], message: Any, as_json: bool) -> None:
    try:
        data = json.loads(bytes(message.data))
    except ValueError:
        return
    kind = str(message.attributes.get("ce-type") or "")
    if as_json:
        _json(out, {"type": kind, "data": data})
    elif "notice" in data:
        verbs = "/".join(data.get("verbs") or [])
        print(f"{data.get('saga_id')}: {data.get('notice')} at {data.get('step')} (verbs: {verbs})", file=out)
    else:
        print(render(data), file=out)
    out.flush()


def _print_running(orchestrator: SagaOrchestrator, out: IO[str], seen: dict[str, str], as_json: bool) -> None:
    """One line per running saga whose state changed since the last poll."""
    for view in orchestrator.list_sagas(limit=100):
        if not view.running or seen.get(view.execution_name) == view.state:
            continue
        seen[view.execution_name] = view.state
        if as_json:
            _json(out, _summary(view))
        else:
            print(f"{view.saga_id}: {view.state}", file=out, flush=True)


def cmd_verb(
    orchestrator: SagaOrchestrator, args: argparse.Namespace, out: IO[str], ask: Callable[[str], str]
) -> int:
    target = f"{args.saga}" + (f" step {args.step}" if getattr(args, "step", None) else "")
    if not args.yes and ask(f"{args.command} saga {target}? [y/N] ").strip().lower() not in ("y", "yes"):
        print(f"saga {args.command}: not confirmed (answer y, or pass --yes)", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "terminate":
        state = orchestrator.terminate_saga(args.saga, reason=args.reason)
        print(f"saga {args.saga} terminated (execution {state}); nothing was undone", file=out)
        return EXIT_OK
    send = {
        "retry": lambda: orchestrator.retry_step(args.saga, args.step, reason=args.reason),
        "skip": lambda: orchestrator.skip_step(args.saga, args.step, reason=args.reason),
        "compensate": lambda: orchestrator.compensate_saga(args.saga, reason=args.reason),
        "cancel": lambda: orchestrator.cancel_saga(args.saga, reason=args.reason),
    }[args.command]
    execution = send()
    print(f"saga {args.saga}: {args.command} sent to {execution}", file=out)
    return EXIT_OK


def cmd_console(orchestrator: SagaOrchestrator, args: argparse.Namespace, out: IO[str], ask: Any) -> int:
    from saga_orchestrator.console.web import serve

    return serve(orchestrator, args.host, args.port, out)


COMMANDS: dict[str, Callable[..., int]] = {
    "start": cmd_start,
    "list": cmd_list,
    "show": cmd_show,
    "watch": cmd_watch,
    **{verb: cmd_verb for verb in VERBS},
    "console": cmd_console,
}


# --- helpers ---------------------------------------------------------------------------------------------


def parse_since(text: str, now: datetime.datetime | None = None) -> datetime.datetime:
    """``30s``, ``15m``, ``1h``, ``2d`` before now, or an RFC 3339 time. Raises ``InvalidRequestError``."""
    from saga_orchestrator.errors import FieldError

    match = _DURATION.match(text.strip())
    if match:
        moment = now or datetime.datetime.now(datetime.UTC)
        return moment - datetime.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    try:
        parsed = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequestError(
            [FieldError("--since", "must be like 30s, 15m, 1h, 2d or an RFC 3339 time")]
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def _summary(view: SagaView) -> dict[str, Any]:
    return {
        "saga_id": view.saga_id,
        "state": view.state,
        "execution": view.execution_name,
        "execution_state": view.execution_state,
        "start_time": view.start_time,
        "end_time": view.end_time,
    }


def _audit_line(entry: Mapping[str, Any]) -> str:
    step = f" {entry.get('step')}" if entry.get("step") else ""
    return f"    audit: {entry.get('verb')}{step} by {entry.get('by')} at {entry.get('at')}: {entry.get('reason')}"


def _short(execution: str) -> str:
    return execution.rsplit("/", 1)[-1]


def _json(out: IO[str], value: Any) -> None:
    print(json.dumps(value, separators=(",", ":"), default=str), file=out, flush=True)


__all__ = ["build_parser", "main", "parse_since", "show_text"]
