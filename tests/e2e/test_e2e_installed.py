"""``pip install .`` into an empty virtual environment outside the clone gives working ``saga`` and
``localcloud`` commands: the workflow, the functions, the examples and deployment.env come as data
(``share/saga-orchestrator``), and ``localcloud up --auto-ports`` plus ``saga start`` run from there.

The new environment borrows the already installed third-party packages (one path entry to this
environment's site-packages, after its own), so the test builds and installs only this project (the
build backend comes from the package index, as for any ``pip install``).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sysconfig
import threading
import venv
from pathlib import Path
from typing import Any

import pytest

from tests.support.eventually import eventually

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with this project installed (not editable); returns its bin dir."""
    home = tmp_path_factory.mktemp("installed")
    venv.EnvBuilder(with_pip=True).create(home / "venv")
    python = home / "venv" / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "borrowed-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", str(ROOT)],
        cwd=home,
        check=True,
        timeout=300,
    )
    return home / "venv" / "bin"


def test_the_installed_commands_run_outside_the_clone(installed: Path, tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.endswith("_EMULATOR_HOST")}
    env.pop("PYTHONPATH", None)
    helped = subprocess.run(
        [installed / "saga", "--help"], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert helped.returncode == 0 and "start, list, show, watch and steer sagas" in helped.stdout.lower()
    where = subprocess.run(
        [installed / "python", "-c", "import saga_orchestrator; print(saga_orchestrator.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert not where.stdout.startswith(str(ROOT)), "the clone's package was imported, not the installed one"

    up = subprocess.Popen(
        [installed / "localcloud", "up", "--auto-ports"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    printed: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in up.stdout or []:
            printed.put(line)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []

    def next_line() -> str:
        try:
            seen.append(printed.get(timeout=120))
        except queue.Empty:
            raise AssertionError("localcloud up printed no more:\n" + "".join(seen)) from None
        return seen[-1]

    try:
        stack_env = dict(env)
        samples = None
        line = next_line()
        while not line.startswith("process logs:"):
            if line.strip().startswith("export "):
                key, _, value = line.strip().removeprefix("export ").partition("=")
                stack_env[key] = value
            if line.startswith("samples pointed at this stack: "):
                samples = Path(line.removeprefix("samples pointed at this stack: ").split(" (", 1)[0])
            line = next_line()
        assert samples is not None, "".join(seen)
        # The samples name the participants' free ports this stack runs, not 9001-9003.
        request = samples / "trip-succeeds.json"
        started = subprocess.run(
            [installed / "saga", "start", str(request), "--saga-id", "installed-1"],
            cwd=tmp_path,
            env=stack_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert started.returncode == 0, started.stderr
        assert started.stdout.startswith("saga installed-1 started: projects/")

        def succeeded() -> dict[str, Any] | None:
            shown = subprocess.run(
                [installed / "saga", "show", "installed-1", "--json"],
                cwd=tmp_path,
                env=stack_env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert shown.returncode == 0, shown.stderr
            view: dict[str, Any] = json.loads(shown.stdout)
            return view if view["state"] == "succeeded" else None

        view = eventually(succeeded, timeout=60, every=0.5, what="the installed stack's saga to succeed")
        assert [step["status"] for step in view["steps"]] == ["succeeded"] * 3
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=60)
        finally:
            up.kill()
    assert up.returncode == 0
