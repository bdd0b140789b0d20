"""``python -m localcloud workflows run FILE [--data JSON]``: run one workflow once, in this process.

Prints the result as JSON on stdout and exits 0; an uncaught workflow error prints the error map as JSON
on stdout and exits 1; a workflow that does not load prints the message with a caret on stderr and
exits 2. ``sys.log`` lines go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from localcloud.workflows.engine.host import ExecutionInfo
from localcloud.workflows.engine.interpreter import run_execution
from localcloud.workflows.engine.loader import load_workflow
from localcloud.workflows.engine.metering import StepMeter
from localcloud.workflows.engine.standalone import StandaloneHost, stderr_log
from localcloud.workflows.lang.errors import DeployError, WorkflowError


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcloud workflows")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a workflow file once and print its result")
    run.add_argument("file", help="workflow definition (YAML or JSON)")
    run.add_argument("--data", default=None, help="the execution argument, as JSON")
    run.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="a user env var")
    run.add_argument(
        "--steps",
        action="store_true",
        help="print the billable step counts on stderr, one per step and one per variable assignment",
    )
    args = parser.parse_args(argv)
    try:
        source = Path(args.file).read_text(encoding="utf-8")
    except OSError as error:
        print(f"cannot read {args.file}: {error.strerror}", file=sys.stderr)
        return 2
    try:
        argument = json.loads(args.data) if args.data is not None else None
    except ValueError as error:
        print(f"--data is not valid JSON: {error}", file=sys.stderr)
        return 2
    env = dict(item.split("=", 1) for item in args.env if "=" in item)
    try:
        program = load_workflow(source, filename=args.file)
    except DeployError as error:
        print(f"{args.file}: {error}", file=sys.stderr)
        return 2
    host = StandaloneHost(info=ExecutionInfo(user_env=env), log_sink=stderr_log)
    meter = StepMeter()
    try:
        result = asyncio.run(run_execution(program, argument, host, meter=meter))
    except WorkflowError as error:
        print(json.dumps(error.payload, ensure_ascii=False, default=repr))
        print(getattr(error, "context", str(error)), file=sys.stderr)
        return 1
    finally:
        if args.steps:
            print(f"steps: {meter.internal} internal, {meter.external} external", file=sys.stderr)
            print(
                f"steps counting each assignment: {meter.assignment_internal} internal, "
                f"{meter.assignment_external} external",
                file=sys.stderr,
            )
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
