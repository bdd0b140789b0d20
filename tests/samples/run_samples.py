"""Google's own samples against the local cloud: ``make samples SAMPLES_DIR=...``.

``SAMPLES_DIR`` holds local checkouts (the samples live on GitHub; nothing of them is copied here) of
``GoogleCloudPlatform/workflows-samples``, ``GoogleCloudPlatform/python-docs-samples`` (its
``cloud_tasks/snippets``, ``cloud_tasks/http_queues`` and ``secretmanager/snippets``) and
``googleapis/python-pubsub`` (its ``samples/snippets``), each in a directory named after the repository.
A checkout that is missing is reported and skipped.

The runner starts ``python -m localcloud serve`` on free ports (REST surfaces included), then runs the
workflows samples (``workflows_samples``) and each Python sample directory's tests (``python_samples``),
once with the clients on gRPC and once on REST, against that one local cloud, prints a summary table and
writes it as JSON with ``--json FILE``. Its exit status is 0 when every workflows sample behaved as
expected and every sample test passed, was skipped, or failed only because it reached a Google service the
local cloud does not emulate (counted apart as "not emulated"), else 1. It is not part of ``make test``: CI has no
checkout of the samples.

Why here and not in ``localcloud/``: it is test support (it drives pytest, pip and the samples' own test
files), and ``localcloud`` ships no test helpers.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from devstack.processes import ManagedProcess, emulators_spec, free_ports
from tests.samples import python_samples, workflows_samples

PROJECT, LOCATION = workflows_samples.PROJECT_ID, "us-central1"
TRANSPORTS = ("grpc", "rest")

_PORTS = (
    "PUBSUB_EMULATOR_HOST",
    "CLOUD_TASKS_EMULATOR_HOST",
    "SECRET_MANAGER_EMULATOR_HOST",
    "WORKFLOWS_EMULATOR_HOST",
    "WORKFLOWS_HTTP_HOST",
    "GCE_METADATA_HOST",
    "STORAGE_EMULATOR_HOST",
    "LOGGING_EMULATOR_HOST",
    "BIGQUERY_EMULATOR_HOST",
    "PUBSUB_REST_HOST",
    "CLOUD_TASKS_REST_HOST",
    "SECRET_MANAGER_REST_HOST",
    "RESOURCE_MANAGER_EMULATOR_HOST",
    "RESOURCE_MANAGER_REST_HOST",
)


@contextmanager
def local_cloud(log_dir: Path) -> Iterator[dict[str, str]]:
    """``localcloud serve`` on free ports; yields the environment its clients need."""
    env = {name: f"127.0.0.1:{port}" for name, port in zip(_PORTS, free_ports(len(_PORTS)), strict=True)}
    env |= {"GCE_METADATA_IP": env["GCE_METADATA_HOST"], "LOCALCLOUD_PROJECT": PROJECT}
    env["STORAGE_EMULATOR_HOST"] = "http://" + env["STORAGE_EMULATOR_HOST"]
    env["BIGQUERY_EMULATOR_HOST"] = "http://" + env["BIGQUERY_EMULATOR_HOST"]  # a URL too
    process = ManagedProcess.start(emulators_spec(env), log_dir=log_dir)
    try:
        process.wait_ready()
        yield env
    finally:
        process.stop()


def run_workflows(root: Path, cloud: dict[str, str]) -> dict[str, Any]:
    print(f"workflows-samples ({root})")
    runner = workflows_samples.WorkflowsSamples(cloud, PROJECT, LOCATION)
    return workflows_samples.summary(runner.run_all(root))


def run_python(
    samples_dir: Path,
    cloud: dict[str, str],
    work: Path,
    transports: tuple[str, ...],
    only: str | None,
    timeout: float,
) -> list[Any]:
    runs: list[Any] = []
    tools = work / "bin"
    python_samples.write_tools(tools)
    for repository, directory in python_samples.DIRECTORIES:
        path = samples_dir / repository / directory
        label = f"{repository}/{directory}"
        if only and only not in label:
            continue
        if not path.is_dir():
            runs.append(vars(python_samples.Run(label, "-", note="no checkout")))
            continue
        deps = work / "deps" / label.replace("/", "_")
        deps.mkdir(parents=True, exist_ok=True)
        problem = python_samples.install_missing(python_samples.missing_requirements(path), deps)
        for transport in transports:
            env = python_samples.sample_environment(cloud, transport, deps, tools, PROJECT)
            report = work / f"{label.replace('/', '_')}-{transport}.xml"
            started = time.monotonic()
            run = python_samples.run_directory(path, label, env, report, timeout)
            run.note = "; ".join(filter(None, [problem, run.note]))
            print(
                f"  {label:42} {transport:5} passed {run.passed:3}  failed {run.failed + run.errors:3} "
                f"(not emulated {run.not_emulated})  skipped {run.skipped:3}  "
                f"({time.monotonic() - started:.0f} s) {run.note}"
            )
            runs.append(vars(run))
    return runs


def print_table(results: dict[str, Any]) -> None:
    print()
    workflows = results.get("workflows")
    if workflows:
        print(
            f"workflows-samples: {workflows['samples']} files, deployed {workflows['deployed']}, "
            f"emulated ran ok {workflows['emulated ran ok']}/{workflows['by kind'].get('emulated', 0)}, "
            f"other services failed as expected {workflows['failed as expected']}/"
            f"{workflows['by kind'].get('other service', 0)}, "
            f"outside HTTP (not judged) {workflows['outside HTTP (not judged)']}, "
            f"unexpected {len(workflows['unexpected'])}"
        )
        for item in workflows["unexpected"]:
            print(f"  UNEXPECTED {item['sample']} ({item['kind']}, {item['state']}): {item['detail']}")
    header = f"{'sample tests':44} {'transport':9} {'passed':>6} {'failed':>6} {'of which not emulated':>21}"
    print(f"\n{header} {'skipped':>7}")
    for run in results.get("python", []):
        failed = run["failed"] + run["errors"]
        print(
            f"{run['directory']:44} {run['transport']:9} {run['passed']:6} {failed:6} "
            f"{run['not_emulated']:21} {run['skipped']:7}"
        )
        for failure in run["failures"]:
            print(f"    FAILED {failure['test']}: {failure['error']}")
        for test in run.get("deselected", []):
            print(f"    DESELECTED {test} (never ends on this transport, see python_samples.HANGS)")


def succeeded(results: dict[str, Any]) -> bool:
    workflows_ok = not results.get("workflows", {}).get("unexpected")
    python_ok = all(
        r["failed"] + r["errors"] == r["not_emulated"] and r["note"] in ("", "no checkout")
        for r in results.get("python", [])
    )
    return workflows_ok and python_ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--samples-dir", type=Path, required=True, help="holds the samples' checkouts")
    parser.add_argument("--json", type=Path, help="write the results there")
    parser.add_argument("--only", choices=("workflows", "python"), help="run one half only")
    parser.add_argument("--transport", choices=TRANSPORTS, action="append", help="default: both")
    parser.add_argument("--directory", help="only the sample directories whose path contains this")
    parser.add_argument(
        "--pytest-timeout", type=float, default=900.0, help="seconds per directory and transport"
    )
    args = parser.parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # progress lines as they come, into a pipe or file too
    transports = tuple(args.transport or TRANSPORTS)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="samples-") as scratch:
        work = Path(scratch)
        with local_cloud(work / "logs") as cloud:
            workflows_root = args.samples_dir / "workflows-samples"
            if args.only in (None, "workflows") and workflows_root.is_dir():
                results["workflows"] = run_workflows(workflows_root, cloud)
            if args.only in (None, "python"):
                results["python"] = run_python(
                    args.samples_dir, cloud, work, transports, args.directory, args.pytest_timeout
                )
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return 0 if succeeded(results) else 1


if __name__ == "__main__":
    sys.exit(main())
