"""Google's Python sample tests, unmodified, against the local cloud: each directory's own pytest files,
run as the samples' ``noxfile.py`` runs them (``pytest --junitxml=...`` in the directory, the repository's
``pytest.ini`` applying), in a subprocess of the project's interpreter.

What the subprocess gets:

- the packages of the directory's ``requirements.txt`` and ``requirements-test.txt`` that the project's
  virtualenv lacks, installed with ``pip install --target`` into a throwaway directory; any distribution
  pip put there that the virtualenv already has is removed again, so the clients under test are always
  the project's own versions (the samples pin older ones);
- ``route/`` first on ``PYTHONPATH``: its ``sitecustomize`` sends Google's hostnames to the emulators (see
  its docstring) and, for the REST run, gives the samples' clients ``transport="rest"``;
- ``-p no:asyncio``: the project's pytest-asyncio, which the samples do not use, warns at start-up, and
  python-pubsub's ``pytest.ini`` turns every warning into an error;
- the local cloud's client environment (``PUBSUB_EMULATOR_HOST`` for the gRPC run, the metadata server for
  credentials), ``GOOGLE_CLOUD_PROJECT`` (as nox sets it), and a ``gcloud`` on ``PATH`` that answers
  ``gcloud auth application-default print-access-token`` (``cloud_tasks/http_queues`` shells out to it).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import re
import shutil
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROUTE = Path(__file__).resolve().parent / "route"
NOT_EMULATED = "is not emulated by the local cloud"  # the sitecustomize's words

# (repository directory under SAMPLES_DIR, sample directory inside it)
DIRECTORIES = (
    ("python-docs-samples", "cloud_tasks/snippets"),
    ("python-docs-samples", "cloud_tasks/http_queues"),
    ("python-docs-samples", "secretmanager/snippets"),
    ("python-pubsub", "samples/snippets"),
)

# Tests that never end on one transport, deselected there (and listed in the report): the samples wait on
# futures without a timeout. Both are python-pubsub's ordered publishing on REST, a client matter
# (google-cloud-pubsub 2.44.0): with message ordering on, google/cloud/pubsub_v1/publisher/client.py
# (lines 458-465) gives each publish a timeout of 2.0**32 s (added by googleapis/python-pubsub#1134 to
# retry for ever). The REST transport hands that to requests as a socket timeout, and on CPython 3.11 a socket
# timeout of 2**32 s waits 0 ms (the poll timeout in milliseconds, 2**32 * 1000, is cast to a C int), so
# the read fails at once with requests' ReadTimeout whatever the server does. That exception is not one
# google/cloud/pubsub_v1/publisher/_batch/thread.py (line 344) catches (GoogleAPIError, TransportError), so
# the commit thread dies and the publish future is never resolved. No upstream issue reports it.
HANGS: dict[tuple[str, str], tuple[str, ...]] = {
    ("python-pubsub/samples/snippets", "rest"): (
        "test_publish_with_ordering_keys",
        "test_resume_publish_with_error_handler",
    ),
}

FAKE_GCLOUD = """#!/bin/sh
# Stands in for the Cloud SDK: `gcloud auth application-default print-access-token --format=json`.
echo '{"token": "local-cloud-token"}'
"""

_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass
class Run:
    directory: str
    transport: str
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    # failed or errored because they reached a Google service the local cloud does not emulate
    # (BigQuery's queries and jobs, say): the sitecustomize's "not emulated by the local cloud"
    not_emulated: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    deselected: list[str] = field(default_factory=list)  # see HANGS
    note: str = ""


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed() -> set[str]:
    return {_normal(d.metadata["Name"]) for d in importlib.metadata.distributions() if d.metadata["Name"]}


def missing_requirements(directory: Path) -> list[str]:
    """The requirement lines of the directory whose distribution the running interpreter lacks."""
    have = installed()
    lines = []
    for name in ("requirements.txt", "requirements-test.txt"):
        path = directory / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            match = _REQUIREMENT_NAME.match(line)
            if match and not line.lstrip().startswith(("#", "-")) and _normal(match.group(1)) not in have:
                lines.append(line.split("#")[0].strip())
    return lines


def install_missing(requirements: list[str], target: Path) -> str:
    """``pip install --target`` the requirements, then drop what the interpreter already has."""
    if not requirements:
        return ""
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
            str(target),
            *requirements,
        ],
        capture_output=True,
        text=True,
    )
    if completed.returncode != 0:
        return "pip install failed: " + completed.stderr.strip()[-500:]
    have = installed()
    for info in target.glob("*.dist-info"):
        name = info.name.removesuffix(".dist-info").rpartition("-")[0]
        if _normal(name) in have:
            _remove_distribution(target, info)
    for directory in sorted((d for d in target.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)):
        if directory.name == "__pycache__" or not any(directory.iterdir()):
            shutil.rmtree(directory, ignore_errors=True)
    return ""


def _remove_distribution(target: Path, info: Path) -> None:
    record = info / "RECORD"
    if record.exists():
        for line in record.read_text().splitlines():
            relative = line.split(",")[0]
            if relative:
                with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                    (target / relative).unlink()
    shutil.rmtree(info, ignore_errors=True)


def sample_environment(
    cloud: Mapping[str, str], transport: str, deps: Path, tools: Path, project: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "PUBSUB_", "CLOUDSDK_"))}
    env = {k: v for k, v in env.items() if not k.endswith("_EMULATOR_HOST")}
    env.update(cloud)
    env.pop("PUBSUB_EMULATOR_HOST", None)
    env |= {
        "PUBSUB_GRPC_HOST": cloud["PUBSUB_EMULATOR_HOST"],
        "LOCALCLOUD_SAMPLES_ROUTE": "1",
        "LOCALCLOUD_SAMPLES_TRANSPORT": transport,
        "GOOGLE_CLOUD_PROJECT": project,
        "GCLOUD_SECRETS_SERVICE_ACCOUNT": f"samples@{project}.iam.gserviceaccount.com",
        "PYTHONPATH": os.pathsep.join([str(ROUTE), str(deps)]),
        "PATH": os.pathsep.join([str(tools), env.get("PATH", "/usr/bin:/bin")]),
    }
    if transport == "grpc":  # the variable google-cloud-pubsub reads; REST goes by hostname instead
        env["PUBSUB_EMULATOR_HOST"] = cloud["PUBSUB_EMULATOR_HOST"]
    return env


def write_tools(tools: Path) -> None:
    tools.mkdir(parents=True, exist_ok=True)
    gcloud = tools / "gcloud"
    gcloud.write_text(FAKE_GCLOUD)
    gcloud.chmod(gcloud.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def run_directory(directory: Path, label: str, env: Mapping[str, str], report: Path, timeout: float) -> Run:
    run = Run(label, env["LOCALCLOUD_SAMPLES_TRANSPORT"])
    hangs = HANGS.get((label, run.transport), ())
    run.deselected = list(hangs)
    try:
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                f"--junitxml={report}",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:asyncio",
                "-q",
                "-rN",
                *(["-k", " and ".join(f"not {test}" for test in hangs)] if hangs else []),
            ],
            cwd=directory,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        run.note = f"timed out after {timeout:g} s"
        return run
    if not report.exists():
        run.note = "pytest wrote no report: " + (completed.stdout + completed.stderr).strip()[-800:]
        return run
    _count(run, report)
    return run


def _count(run: Run, report: Path) -> None:
    for case in ET.parse(report).getroot().iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}".removeprefix("::")
        outcome = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
        if outcome is None:
            run.passed += 1
        elif outcome.tag == "skipped":
            run.skipped += 1
        else:
            if outcome.tag == "failure":
                run.failed += 1
            else:
                run.errors += 1
            message = (outcome.get("message") or outcome.text or "").strip().splitlines()
            first = (message[0] if message else "")[:300]
            run.not_emulated += NOT_EMULATED in first
            run.failures.append({"test": name, "error": first})
