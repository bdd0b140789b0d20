"""Optional sampling profile of a running process with ``py-spy`` (used only when it is installed next to
this interpreter or on PATH): the functions holding the most samples, by self time and inclusive time."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def _frame(text: str) -> str:
    # "function (path/to/module.py:123)" → "function (module.py)"
    name, _, where = text.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(where).parts
    short = "/".join(parts[-2:]) if parts else where
    return f"{name} ({short})"


_GENERIC = ("asyncio/", "runpy", "threading.py", "selectors.py", "runtime.py", "__main__.py", "concurrent/")


_PROJECT = ("saga_orchestrator/", "workflows/", "tasks/", "pubsub/", "localcloud/", "eventarc/", "/main.py")


def _generic(frame: str) -> bool:
    """Frames every sample passes through (event loop, process entry), which say nothing of the cost."""
    return frame.startswith("process ") or any(marker in frame for marker in _GENERIC)


def summarize(raw: str, top: int = 12) -> dict[str, Any]:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    project: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame(f) for f in stack.split(";") if f]
        if frames:
            own[frames[-1]] += count
        for frame in set(frames):
            if not _generic(frame):
                inclusive[frame] += count
            if not _generic(frame) and any(marker in frame for marker in _PROJECT):
                project[frame] += count
    if not total:
        return {"samples": 0}

    def share(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"frame": k, "share": round(v / total, 3)} for k, v in counter.most_common(top)]

    return {
        "samples": total,
        "self": share(own),
        "inclusive": share(inclusive),
        "project_inclusive": share(project),
    }


class Sampler:
    """``py-spy record`` of ``pid`` (and its subprocesses) for ``seconds`` in the background."""

    def __init__(self, pid: int, seconds: int, *, rate: int = 50) -> None:
        self.result: dict[str, Any] | None = None
        binary = py_spy()
        if binary is None:
            self._thread = None
            return
        self._dir = tempfile.TemporaryDirectory(prefix="bench-profile-")
        self._out = Path(self._dir.name) / "profile.txt"
        argv = [
            binary,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(seconds),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--subprocesses",
            "--nonblocking",
            "--output",
            str(self._out),
        ]

        def run() -> None:
            done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=seconds + 60)
            if done.returncode == 0 and self._out.exists():
                self.result = summarize(self._out.read_text(encoding="utf-8"))
            else:
                self.result = {"error": done.stderr.strip()[-500:]}

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def join(self) -> dict[str, Any] | None:
        if self._thread is None:
            return None
        self._thread.join()
        self._dir.cleanup()
        return self.result
