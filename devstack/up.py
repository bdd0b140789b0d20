"""python -m localcloud up (make up): the whole saga stack until Ctrl-C.

Starts the emulators, provisions them from deployment.env, starts the three functions and the demo
participants on the well-known ports (--auto-ports for free ones), and the web console (``saga
console``, its own process, reading the stack as the ``saga`` command does); prints where everything
listens and how to publish a saga request, prints each saga result as it arrives, and stops every process
on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from saga_orchestrator.console.cli import CONSOLE_PORT

from devstack.processes import (
    ManagedProcess,
    ProcessError,
    ProcessSpec,
    child_environment,
    free_ports,
    port_is_free,
)
from devstack.provision import ProvisionError
from devstack.settings import REPO_ROOT, SettingsFileError
from devstack.stack import EXAMPLES_DIR, LocalStack, StackPorts


def publish_snippet(stack: LocalStack, example: str = "trip-succeeds") -> str:
    """A copy-paste Python program that publishes a sample request (with a fresh saga id)."""
    pubsub = stack.config.pubsub
    project = stack.settings.project_id
    topic = stack.settings.require("SAGA_REQUEST_TOPIC")
    well_known = StackPorts.well_known()
    moved = {
        f"http://127.0.0.1:{getattr(well_known, name)}": url
        for name, url in stack.participant_urls.items()
        if url != f"http://127.0.0.1:{getattr(well_known, name)}"
    }
    lines = [
        f"PUBSUB_EMULATOR_HOST={pubsub} {sys.executable} - <<'EOF'",
        "import json, uuid",
        "from google.cloud import pubsub_v1",
        f"text = open({str(EXAMPLES_DIR / (example + '.json'))!r}).read()",
    ]
    lines += [f"text = text.replace({old!r}, {new!r})" for old, new in moved.items()]
    lines += [
        "request = json.loads(text)",
        'request["saga_id"] = "trip-" + uuid.uuid4().hex[:8]',
        "publisher = pubsub_v1.PublisherClient()",
        f'topic = publisher.topic_path("{project}", "{topic}")',
        'print(request["saga_id"], publisher.publish(topic, json.dumps(request).encode()).result())',
        "EOF",
    ]
    return "\n".join(lines)


def console_spec(stack: LocalStack, port: int) -> ProcessSpec:
    """``python -m saga_orchestrator.console console --port <port>`` with the functions' environment."""
    return ProcessSpec(
        name="saga-console",
        argv=(sys.executable, "-m", "saga_orchestrator.console", "console", "--port", str(port)),
        env=child_environment(stack.function_environment()),
        ready_url=f"http://127.0.0.1:{port}/static/console.css",
    )


@contextlib.contextmanager
def running_console(stack: LocalStack, port: int, log_dir: Path) -> Iterator[str]:
    """The web console, started for ``stack`` and stopped on leaving; yields its URL."""
    process = ManagedProcess.start(console_spec(stack, port), log_dir=log_dir)
    try:
        process.wait_ready()
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.stop()


def write_sample_requests(stack: LocalStack, directory: Path) -> Path:
    """``examples/requests`` with the participants' origins pointed at ``stack`` (its ports may be free
    ones), so ``saga start`` of a sample reaches the participants this stack runs."""
    directory.mkdir(parents=True, exist_ok=True)
    for sample in sorted(EXAMPLES_DIR.glob("*.json")):
        request = stack.example_request(sample.stem)
        (directory / sample.name).write_text(json.dumps(request, indent=2) + "\n", encoding="utf-8")
    return directory


def describe(stack: LocalStack, console: str | None = None, requests: Path | None = None) -> str:
    lines = ["local cloud up (deployment.env: " + stack.settings.source + ")", ""]
    addresses = {**stack.summary(), **({"web console": console} if console else {})}
    width = max(len(name) for name in addresses)
    lines += [f"  {name.ljust(width)}  {address}" for name, address in addresses.items()]
    lines += [
        "",
        "environment for your own clients:",
        *(f"  export {key}={value}" for key, value in stack.config.client_environment().items()),
        "",
        "publish a saga request (a sample of examples/requests/):",
        "",
        publish_snippet(stack),
        "",
        "other samples: payment-declined, transient-failures. What a participant saw, and a failure switch:",
        f"  curl -s {stack.participant_urls['payment']}/_control/calls",
        f'  curl -s -X POST {stack.participant_urls["hotel"]}/_control/next -d \'{{"result": "ERROR", "count": 2}}\'',
        *(
            [f"samples pointed at this stack: {requests} (saga start {requests / 'payment-declined.json'})"]
            if requests
            else []
        ),
        f"process logs: {stack.log_dir}",
        "results are printed below as they arrive; Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


def format_result(data: Any) -> str:
    if not isinstance(data, dict):
        return f"result: {data!r}"
    steps = ", ".join(
        f"{s.get('name')}={s.get('status')}" for s in data.get("steps") or [] if isinstance(s, dict)
    )
    text = f"saga {data.get('saga_id')}: {data.get('status')}"
    if data.get("failed_step") or data.get("reason"):
        text += f" (failed step {data.get('failed_step')}: {data.get('reason')})"
    if data.get("errors"):
        text += " " + json.dumps(data["errors"])
    return text + (f" [{steps}]" if steps else "")


def run(args: argparse.Namespace, out: IO[str]) -> int:
    """Start the stack (Ctrl-C while starting stops what was started), then serve until a signal."""
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    ports = StackPorts() if args.auto_ports else StackPorts.well_known()
    console_port = free_ports(1)[0] if args.auto_ports else CONSOLE_PORT
    if not args.no_console and not port_is_free(console_port):
        raise ProcessError(
            "saga-console", f"port {console_port} is in use (use --auto-ports or --no-console)"
        )
    print("starting the local cloud...", file=out, flush=True)
    log_dir = args.log_dir or REPO_ROOT / ".localcloud" / "logs"
    with contextlib.ExitStack() as running:
        stack = running.enter_context(
            LocalStack.start(
                ports,
                env_file=args.env_file,
                participants=not args.no_participants,
                log_dir=log_dir,
                echo=sys.stderr if args.follow else None,
                quotas=os.environ.get("LOCALCLOUD_QUOTAS", ""),
            )
        )
        console = (
            None
            if args.no_console
            else running.enter_context(running_console(stack, console_port, Path(log_dir)))
        )
        requests = write_sample_requests(stack, Path(log_dir).parent / "requests")
        print(describe(stack, console, requests), file=out, flush=True)
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not stop.is_set():
                for event in stack.pull_results(timeout=1.0):
                    print(format_result(event.data), file=out, flush=True)
                dead = [p.name for p in stack.processes if not p.alive()]
                if dead:
                    print(f"stopping: {', '.join(dead)} exited (see {stack.log_dir})", file=out, flush=True)
                    return 1
                stop.wait(0.5)
            print("stopping...", file=out, flush=True)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return 0


def main(argv: list[str] | None = None, out: IO[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m localcloud up",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--env-file", default=None, help="settings file (default: deployment.env)")
    parser.add_argument("--auto-ports", action="store_true", help="free ports instead of the well-known ones")
    parser.add_argument("--no-participants", action="store_true", help="do not start the demo participants")
    parser.add_argument(
        "--no-console", action="store_true", help="do not start the web console (saga console)"
    )
    parser.add_argument("--follow", action="store_true", help="echo every process's output to stderr")
    parser.add_argument("--log-dir", default=None, help="where process logs go (default: .localcloud/logs)")
    args = parser.parse_args(argv)
    stream = out or sys.stdout
    try:
        return run(args, stream)
    except (ProcessError, ProvisionError, SettingsFileError, OSError) as error:
        print(f"localcloud up failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        with contextlib.suppress(Exception):
            stream.flush()


if __name__ == "__main__":
    sys.exit(main())
