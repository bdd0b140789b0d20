"""The README's code runs as written. Each block meant to run is marked ``<!-- readme-test: NAME -->`` in
the README itself and extracted from it here (so the two cannot drift), then run against the real local
stack as a person would: the Python blocks as scripts, the shell lines as commands. The stack listens on
free ports, so the well-known addresses a block names (participants on 9001-9003, the step executor on
8082) are pointed at it, in the blocks and in a copy of ``examples/requests``.
"""

from __future__ import annotations

import json
import queue
import re
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from devstack.stack import PARTICIPANTS, LocalStack, StackPorts
from tests.e2e.test_e2e_sagas import RESULT_TIMEOUT

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
MARKED = re.compile(r"<!-- readme-test: ([\w-]+) -->\n```[\w-]*\n(.*?)```", re.DOTALL)


def readme_blocks() -> dict[str, str]:
    return dict(MARKED.findall((ROOT / "README.md").read_text(encoding="utf-8")))


def on_stack(stack: LocalStack, text: str) -> str:
    """``text`` with the well-known participant and step executor origins pointed at ``stack``."""
    ports = StackPorts.well_known()
    for service in PARTICIPANTS:
        text = text.replace(f"http://127.0.0.1:{getattr(ports, service)}", stack.participant_urls[service])
    return text.replace(f"http://127.0.0.1:{ports.step_executor}", stack.function_urls.step_executor)


@pytest.fixture
def workdir(stack: LocalStack, tmp_path: Path) -> Path:
    """A directory with ``examples/requests`` pointed at the stack, where the blocks run."""
    requests = tmp_path / "examples" / "requests"
    requests.mkdir(parents=True)
    for sample in (ROOT / "examples" / "requests").glob("*.json"):
        (requests / sample.name).write_text(on_stack(stack, sample.read_text(encoding="utf-8")))
    return tmp_path


def test_every_marked_block_is_found() -> None:
    assert set(readme_blocks()) == {"publish", "saga-command", "python-api", "task-manager", "workflows-run"}


def run_python(stack: LocalStack, workdir: Path, name: str) -> subprocess.CompletedProcess[str]:
    script = workdir / f"{name}.py"
    script.write_text(on_stack(stack, readme_blocks()[name]))
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=workdir,
        env=stack.function_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_publish_snippet_runs_twice_and_each_run_sees_its_own_result(
    stack: LocalStack, workdir: Path
) -> None:
    script = workdir / "publish.py"
    script.write_text(on_stack(stack, readme_blocks()["publish"]))
    for _ in range(2):
        process = subprocess.Popen(
            [sys.executable, str(script)],
            cwd=workdir,
            env=stack.function_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        printed: queue.Queue[str] = queue.Queue()

        def pump(source: subprocess.Popen[str] = process, sink: queue.Queue[str] = printed) -> None:
            for line in source.stdout or []:
                sink.put(line)

        threading.Thread(target=pump, daemon=True).start()
        try:
            first = printed.get(timeout=60)
            assert first.startswith("published my-saga-"), first
            saga_id = first.split()[1]
            line = printed.get(timeout=RESULT_TIMEOUT)
            while f'"saga_id":"{saga_id}"' not in line.replace(" ", ""):
                line = printed.get(timeout=RESULT_TIMEOUT)
            event_type, data = line.split(" ", 1)
            assert event_type.startswith("dev.sagaorchestrator.saga.v1.")
            assert json.loads(data)["status"] == "compensated"  # the payment is declined
        finally:
            process.kill()
            process.communicate(timeout=30)


def test_the_saga_command_lines_run(stack: LocalStack, workdir: Path) -> None:
    lines = [line.split("#", 1)[0].strip() for line in readme_blocks()["saga-command"].splitlines()]
    outputs = []
    for line in filter(None, lines):
        words = shlex.split(line)
        assert words[0] == "saga"
        done = subprocess.run(
            [sys.executable, "-m", "saga_orchestrator.console", *words[1:]],
            cwd=workdir,
            env=stack.function_environment(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"{line}: {done.stderr}"
        outputs.append(done.stdout)
    assert outputs[0].startswith("saga my-second-saga ")
    assert outputs[1].startswith("saga my-second-saga: ")
    assert isinstance(json.loads(outputs[2]), list)


def test_the_python_api_example_runs(stack: LocalStack, workdir: Path) -> None:
    done = run_python(stack, workdir, "python-api")
    assert done.returncode == 0, done.stderr
    state = done.stdout.splitlines()[0].split()
    assert state[0] in ("running", "succeeded") and state[1] in ("ACTIVE", "SUCCEEDED")


def test_the_task_manager_example_runs(stack: LocalStack, workdir: Path) -> None:
    done = run_python(stack, workdir, "task-manager")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"projects/{stack.settings.project_id}/locations/")


def test_the_workflows_run_example_prints_what_the_readme_says() -> None:
    lines = readme_blocks()["workflows-run"].splitlines()
    for command, expected in zip(lines[0::2], lines[1::2], strict=True):
        assert command.startswith("$ python ")
        words = shlex.split(command[2:].split("#", 1)[0])
        done = subprocess.run(
            [sys.executable, *words[1:]], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.stdout.strip() == expected
        assert done.returncode == (1 if "exit 1" in command else 0)
