"""Engine speed: the same compute-only workflow (``compute.yaml``) run by our engine in this process and by
the ``workflows-emulator`` package from PyPI in a virtual environment of its own, one after the other in
one run. Both are timed around the execution only (loading and interpreter start excluded); steps are the
billable steps our meter counts for that workflow (the peer does not count steps)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from localcloud.workflows.engine.interpreter import run_execution
from localcloud.workflows.engine.loader import load_workflow
from localcloud.workflows.engine.metering import StepMeter
from localcloud.workflows.engine.standalone import StandaloneHost

PEER_PACKAGE = "workflows-emulator==1.10.0"
SOURCE = Path(__file__).with_name("compute.yaml")
FULL_ITERATIONS = 20_000

PEER_SCRIPT = """
import json, logging, sys, time
logging.disable(logging.CRITICAL)
from workflows_emulator.main import execute_workflow, load_workflow
workflow = load_workflow(sys.argv[1])
started = time.perf_counter()
result = execute_workflow(workflow, {"args": {}})
print(json.dumps({"result": result, "seconds": time.perf_counter() - started}))
"""


def workflow_source(iterations: int) -> str:
    return SOURCE.read_text(encoding="utf-8").replace("range: [1, 20000]", f"range: [1, {iterations}]")


def ours(source: str) -> dict[str, Any]:
    program = load_workflow(source, filename="compute.yaml")
    meter = StepMeter()
    started = time.perf_counter()
    result = asyncio.run(run_execution(program, None, StandaloneHost(), meter=meter, step_limit=10_000_000))
    seconds = time.perf_counter() - started
    return {"result": result, "seconds": seconds, "steps": meter.total}


def peer_environment(directory: Path) -> Path:
    """A fresh venv with the peer installed; returns its python."""
    venv = directory / "peer-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", PEER_PACKAGE],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return python


def peer(python: Path, source: str, directory: Path, timeout: float) -> dict[str, Any]:
    workflow = directory / "compute.yaml"
    workflow.write_text(source, encoding="utf-8")
    script = directory / "run_peer.py"
    script.write_text(PEER_SCRIPT, encoding="utf-8")
    out = subprocess.run(
        [str(python), str(script), str(workflow)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=directory,
    )
    if out.returncode != 0:
        raise RuntimeError(f"the peer failed (exit {out.returncode}): {out.stderr.strip()[-2000:]}")
    reported: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return reported


def run(*, quick: bool) -> dict[str, Any]:
    iterations = FULL_ITERATIONS // 5 if quick else FULL_ITERATIONS
    source = workflow_source(iterations)
    with tempfile.TemporaryDirectory(prefix="bench-peer-") as tmp:
        directory = Path(tmp)
        install_started = time.monotonic()
        python = peer_environment(directory)
        install_seconds = time.monotonic() - install_started
        mine = ours(source)
        theirs = peer(python, source, directory, timeout=400)
    if theirs.get("result") != mine["result"]:
        raise RuntimeError(f"engines disagree: ours {mine['result']!r}, peer {theirs.get('result')!r}")
    steps = mine["steps"]
    ours_rate = steps / mine["seconds"]
    peer_rate = steps / float(theirs["seconds"])
    return {
        "workflow": "bench/compute.yaml",
        "iterations": iterations,
        "steps": steps,
        "result": mine["result"],
        "ours_seconds": round(mine["seconds"], 3),
        "peer_seconds": round(float(theirs["seconds"]), 3),
        "ours_steps_per_second": round(ours_rate),
        "peer_steps_per_second": round(peer_rate),
        "ratio": round(ours_rate / peer_rate, 1),
        "peer": PEER_PACKAGE,
        "peer_install_seconds": round(install_seconds, 1),
    }
