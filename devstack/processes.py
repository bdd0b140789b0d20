"""Child processes of the local runner: the emulators (``python -m localcloud serve``), the four functions
under ``functions-framework`` exactly as deployed, and the demo participants.

Every child runs in its own session (so its own process group, e.g. gunicorn's arbiter and workers
together). ``ManagedProcess.stop`` sends SIGTERM to the whole group, waits, then SIGKILL; it returns when
no member of the group is left (members that are only zombies are reaped when they are ours); ``kill``
sends SIGKILL at once (a crash), and ``restart`` runs the same spec again on the same port. On Linux the
runner makes itself a child subreaper, so grandchildren orphaned by a dying leader become its children and
are reaped here instead of lingering as zombies under an init that does not reap. Every live child is also
stopped at interpreter exit (``atexit``) and on SIGTERM/SIGHUP when the runner owns those signals.

Output of each child (stdout and stderr together) goes line by line to a log file, optionally echoed to a
stream with a ``[name]`` prefix, and optionally handed to a sink (a callable taking the line, e.g. the
local cloud's log agent, which forwards a function's lines to Cloud Logging as Cloud Run does); the sink
is called on the output pump's thread, so it must not block. The last lines are kept to explain a child
that dies before it is ready.
Readiness is polled with a deadline: an HTTP answer (any status), an open TCP port, or a line on stdout.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import ctypes
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from devstack.settings import REPO_ROOT

# Environment the runner never hands down from its own: credentials and endpoints must come from the
# local cloud only, and the settings only from deployment.env.
_SCRUBBED_PREFIXES = ("GOOGLE_", "CLOUDSDK_", "GCE_", "SAGA_", "LOCALCLOUD_", "K_", "FUNCTION_")
_SCRUBBED_SUFFIXES = ("_EMULATOR_HOST",)
_SCRUBBED_NAMES = frozenset(
    {"PAYMENT_API_KEY", "OIDC_CERTS_URL", "PORT", "WORKFLOWS_HTTP_HOST", "PUBSUB_PROJECT_ID"}
)

# Receives each line of a child's output (without its line ending); must return at once.
LineSink = Callable[[str], None]

# The web layers a demo participant runs on (``python -m examples.participants --framework``).
PARTICIPANT_FRAMEWORKS = ("aiohttp", "fastapi", "functions-framework")
DEFAULT_PARTICIPANT_FRAMEWORK = "aiohttp"

FUNCTION_SIGNATURES: dict[str, str] = {
    "start_saga": "cloudevent",
    "step_executor": "http",
    "saga_completion": "http",
    "saga_sweeper": "http",
}


class ProcessError(RuntimeError):
    """A child could not be started, died, or did not become ready in time. ``output`` is its last lines."""

    def __init__(self, name: str, message: str, output: str = "") -> None:
        detail = f"{name}: {message}"
        if output:
            detail += "\n--- last output of " + name + " ---\n" + output
        super().__init__(detail)
        self.name = name
        self.output = output


@dataclass(frozen=True)
class ProcessSpec:
    """What to run. Exactly one ``ready_*`` is normally set; none means "started" is "ready"."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str = str(REPO_ROOT)
    ready_url: str | None = None
    ready_address: str | None = None
    ready_line: str | None = None
    ready_timeout: float = 30.0


def child_environment(extra: Mapping[str, str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default ``os.environ``) without anything Google, saga or emulator related, plus ``extra``;
    ``PYTHONPATH`` gains the repository root and ``shared/`` (as deploy.sh ships ``shared`` with each
    function)."""
    source = os.environ if base is None else base
    env = {
        k: v
        for k, v in source.items()
        if not k.startswith(_SCRUBBED_PREFIXES)
        and not k.endswith(_SCRUBBED_SUFFIXES)
        and k not in _SCRUBBED_NAMES
    }
    paths = [str(REPO_ROOT), str(REPO_ROOT / "shared")]
    if source.get("PYTHONPATH"):
        paths.append(source["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports free right now, for servers that bind them a moment later.

    They are drawn at random below the kernel's ephemeral range, never from it: a port the kernel hands
    out to a ``bind(host, 0)`` or to an outgoing connection between now and the server's bind could
    otherwise be one of these. Under ``pytest-xdist`` each worker draws from its own share of that
    range, so two workers starting stacks at the same moment never pick the same port."""
    low, high = _port_share()
    chosen: list[int] = []
    for port in random.sample(range(low, high), high - low):
        if port not in _handed_out and port_is_free(port, host):
            chosen.append(port)
            if len(chosen) == count:
                _handed_out.extend(chosen)
                return chosen
    raise OSError(f"fewer than {count} free ports between {low} and {high}")


# The ports this process handed out lately (a server may not have bound one yet): never handed out twice.
_handed_out: collections.deque[int] = collections.deque(maxlen=1024)


def _port_share() -> tuple[int, int]:
    """The ports this process may draw from: 10000 up to the ephemeral range, split among xdist workers."""
    low, high = 10_000, _ephemeral_low()
    worker, workers = os.environ.get("PYTEST_XDIST_WORKER", ""), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if worker.startswith("gw") and workers:
        share = (high - low) // max(int(workers), 1)
        low += int(worker[2:]) * share
        high = low + share
    return low, high


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux's ``ip_local_port_range``; IANA's 49152
    elsewhere), never below 12000 so the shares stay wide."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as handle:
            return max(int(handle.read().split()[0]), 12_000)
    except (OSError, ValueError, IndexError):
        return 49_152


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


# --- process groups ---------------------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgrp) from /proc, or None when the process is gone or /proc is unavailable."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as file:
            text = file.read()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[2])


def group_members(pgid: int) -> list[tuple[int, str, int]]:
    """(pid, state, ppid) of every process in group ``pgid`` (Linux /proc)."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(int(entry))
            if stat is not None and stat[2] == pgid:
                members.append((int(entry), stat[0], stat[1]))
    return members


def _reap_group(pgid: int) -> None:
    # The leader (pid == pgid) is left to its Popen, which needs its exit status.
    me = os.getpid()
    for pid, state, ppid in group_members(pgid):
        if state == "Z" and ppid == me and pid != pgid:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def group_alive(pgid: int) -> bool:
    """True while some member of the group is running (zombies do not count)."""
    if os.path.isdir("/proc/self"):
        _reap_group(pgid)
        return any(state != "Z" for _, state, _ in group_members(pgid))
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_subreaper_set = False


def _become_subreaper() -> None:
    global _subreaper_set
    if _subreaper_set or not sys.platform.startswith("linux"):
        return
    _subreaper_set = True
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


_live: set[ManagedProcess] = set()
_live_lock = threading.Lock()
_hooks_installed = False


def stop_all(timeout: float = 5.0) -> None:
    """Stop every child this interpreter started that is still running."""
    with _live_lock:
        processes = list(_live)
    for process in processes:
        process.stop(timeout=timeout)


def _on_signal(signum: int, frame: Any) -> None:
    # Raising unwinds the main thread through every ``with LocalStack...`` and ``finally``; atexit follows.
    raise SystemExit(128 + signum)


def _install_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(stop_all)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError, OSError):
            if signal.getsignal(sig) == signal.SIG_DFL:
                signal.signal(sig, _on_signal)


# --- one child --------------------------------------------------------------------------------------


@dataclass(eq=False)
class ManagedProcess:
    spec: ProcessSpec
    popen: subprocess.Popen[bytes]
    log_path: Path | None
    echo: IO[str] | None = None
    sink: LineSink | None = None
    _tail: deque[str] = field(default_factory=lambda: deque(maxlen=60))
    _ready_line: str | None = None
    _line_seen: threading.Event = field(default_factory=threading.Event)
    _pump: threading.Thread | None = None
    _stopped: bool = False

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def pgid(self) -> int:
        # The child called setsid(): its group id is its pid, also after it died.
        return self.popen.pid

    @property
    def ready_line(self) -> str | None:
        return self._ready_line

    def output_tail(self) -> str:
        return "\n".join(self._tail)

    def alive(self) -> bool:
        return self.popen.poll() is None

    @classmethod
    def start(
        cls,
        spec: ProcessSpec,
        *,
        log_dir: Path | None = None,
        echo: IO[str] | None = None,
        sink: LineSink | None = None,
    ) -> ManagedProcess:
        _install_hooks()
        _become_subreaper()
        log_path = None
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            log_path = log_dir / f"{spec.name}.log"
        process = cls(spec=spec, popen=_spawn(spec), log_path=log_path, echo=echo, sink=sink)
        process._watch()
        return process

    def _watch(self) -> None:
        with _live_lock:
            _live.add(self)
        self._pump = threading.Thread(target=self._read_output, name=f"output-{self.name}", daemon=True)
        self._pump.start()

    def _read_output(self) -> None:
        assert self.popen.stdout is not None
        log = open(self.log_path, "a", encoding="utf-8") if self.log_path else None  # noqa: SIM115
        try:
            for raw in self.popen.stdout:
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                self._tail.append(line)
                if log is not None:
                    log.write(line + "\n")
                    log.flush()
                if self.echo is not None:
                    with contextlib.suppress(ValueError, OSError):
                        self.echo.write(f"[{self.name}] {line}\n")
                        self.echo.flush()
                if self.sink is not None:
                    with contextlib.suppress(Exception):  # a failing sink never stops the pump
                        self.sink(line)
                prefix = self.spec.ready_line
                if prefix is not None and self._ready_line is None and line.startswith(prefix):
                    self._ready_line = line
                    self._line_seen.set()
        finally:
            if log is not None:
                log.close()

    def _is_ready(self) -> bool:
        spec = self.spec
        if spec.ready_line is not None and self._ready_line is None:
            return False
        if spec.ready_address is not None:
            host, _, port = spec.ready_address.rpartition(":")
            try:
                with socket.create_connection((host or "127.0.0.1", int(port)), timeout=0.5):
                    pass
            except OSError:
                return False
        if spec.ready_url is not None:
            try:
                with urllib.request.urlopen(spec.ready_url, timeout=1.0):
                    pass
            except urllib.error.HTTPError:
                pass  # it answered: it is listening
            except (urllib.error.URLError, OSError):
                return False
        return True

    def wait_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (self.spec.ready_timeout if timeout is None else timeout)
        while True:
            if not self.alive():
                self._drain()
                raise ProcessError(
                    self.name,
                    f"exited with status {self.popen.returncode} before it was ready",
                    self.output_tail(),
                )
            if self._is_ready():
                return
            if time.monotonic() >= deadline:
                raise ProcessError(self.name, "did not become ready in time", self.output_tail())
            self._line_seen.wait(0.05)

    def _drain(self) -> None:
        if self._pump is not None:
            self._pump.join(timeout=2.0)

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the whole process group: SIGTERM, then SIGKILL after ``timeout`` seconds. Idempotent."""
        self._end(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL to the whole process group at once, as a crash or an out-of-memory kill: no handler
        runs, nothing is flushed, connections in flight are cut. Returns when no member is left; the
        process may then be ``restart``-ed. Idempotent, like ``stop``."""
        self._end(signal.SIGKILL, 5.0)

    def restart(self, timeout: float | None = None) -> None:
        """Run the same spec again (same argv, environment and port) after ``stop`` or ``kill`` (a running
        group is stopped first), writing to the same log file, echo and sink; returns when it is ready
        (``timeout``: the spec's ``ready_timeout`` by default), or raises ``ProcessError`` as
        ``wait_ready`` does. A restart is a new process: whatever it kept in memory is gone."""
        self.stop()
        self._tail.append(f"--- restarted {self.name} ---")
        self._ready_line = None
        self._line_seen = threading.Event()
        self.popen = _spawn(self.spec)
        self._stopped = False
        self._watch()
        self.wait_ready(timeout)

    def _end(self, first: signal.Signals, timeout: float) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            self._signal_group(first)
            if not self._wait_gone(timeout):
                self._signal_group(signal.SIGKILL)
                self._wait_gone(5.0)
        finally:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=1.0)
            if os.path.isdir("/proc/self"):
                # Members that died after the last look are zombies now ours (reparented to this
                # subreaper when their parent died): reap them too.
                _reap_group(self.pgid)
            self._drain()
            if self.popen.stdout is not None:
                self.popen.stdout.close()
            with _live_lock:
                _live.discard(self)

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, sig)

    def _wait_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            self.popen.poll()
            if self.popen.returncode is not None and not group_alive(self.pgid):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)


def _spawn(spec: ProcessSpec) -> subprocess.Popen[bytes]:
    """The child of ``spec`` in a session of its own, its stdout and stderr on one pipe."""
    try:
        return subprocess.Popen(
            list(spec.argv),
            cwd=spec.cwd,
            env=dict(spec.env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as error:
        raise ProcessError(spec.name, f"cannot run {spec.argv[0]}: {error}") from error


def start_all(
    specs: Iterable[ProcessSpec],
    *,
    log_dir: Path | None = None,
    echo: IO[str] | None = None,
    sinks: Mapping[str, LineSink] | None = None,
) -> list[ManagedProcess]:
    """Start every spec, then wait until all are ready; on any failure stop those started and raise.
    ``sinks``: by spec name, where that child's output lines also go."""
    started: list[ManagedProcess] = []
    try:
        for spec in specs:
            sink = (sinks or {}).get(spec.name)
            started.append(ManagedProcess.start(spec, log_dir=log_dir, echo=echo, sink=sink))
        for process in started:
            process.wait_ready()
    except BaseException:
        for process in reversed(started):
            process.stop()
        raise
    return started


# --- what the runner starts ---------------------------------------------------------------------------


def functions_framework_command() -> list[str]:
    """The ``functions-framework`` console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "functions-framework"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "functions_framework"]


def function_spec(name: str, port: int, env: Mapping[str, str], *, host: str = "127.0.0.1") -> ProcessSpec:
    """``functions-framework --source functions/<name>/main.py --target <name> --signature-type ...``, with
    the variables Cloud Run sets for a function (``K_SERVICE``, ``FUNCTION_TARGET``, ...)."""
    signature = FUNCTION_SIGNATURES[name]
    argv = [
        *functions_framework_command(),
        "--source",
        f"functions/{name}/main.py",
        "--target",
        name,
        "--signature-type",
        signature,
        "--host",
        host,
        "--port",
        str(port),
    ]
    runtime = {
        "K_SERVICE": name.replace("_", "-"),
        "K_REVISION": f"{name.replace('_', '-')}-00001-local",
        "FUNCTION_TARGET": name,
        "FUNCTION_SIGNATURE_TYPE": signature,
        "PORT": str(port),
    }
    return ProcessSpec(
        name=name,
        argv=tuple(argv),
        env=child_environment({**runtime, **env}),
        # functions-framework serves /robots.txt itself (404) without calling the function.
        ready_url=f"http://{host}:{port}/robots.txt",
    )


def participant_spec(
    service: str,
    port: int,
    *,
    certs_url: str,
    api_key: str | None = None,
    host: str = "127.0.0.1",
    hang_seconds: float | None = None,
    framework: str = DEFAULT_PARTICIPANT_FRAMEWORK,
    state_dir: str | None = None,
) -> ProcessSpec:
    """``python -m examples.participants --service <service> --framework <framework> --port <port>
    --certs-url ...``; ``framework`` is one of ``PARTICIPANT_FRAMEWORKS`` (the web layer the service runs
    on; the same behaviour and ``/_control`` endpoints on each); ``state_dir``: where it keeps its state
    across restarts (``--state-dir``; None: in memory)."""
    if framework not in PARTICIPANT_FRAMEWORKS:
        raise ValueError(f"unknown participant framework {framework!r}; one of {PARTICIPANT_FRAMEWORKS}")
    argv = [
        sys.executable,
        "-m",
        "examples.participants",
        "--service",
        service,
        "--framework",
        framework,
        "--host",
        host,
        "--port",
        str(port),
    ]
    argv += ["--certs-url", certs_url]
    if hang_seconds is not None:
        argv += ["--hang-seconds", str(hang_seconds)]
    if state_dir is not None:
        argv += ["--state-dir", state_dir]
    extra = {"PAYMENT_API_KEY": api_key} if api_key else {}
    return ProcessSpec(
        name=f"participant-{service}",
        argv=tuple(argv),
        env=child_environment(extra),
        ready_url=f"http://{host}:{port}/_control/health",
    )


def emulators_spec(env: Mapping[str, str], *, ready_timeout: float = 60.0) -> ProcessSpec:
    """``python -m localcloud serve``; ready when it prints ``localcloud ready``."""
    return ProcessSpec(
        name="localcloud",
        argv=(sys.executable, "-m", "localcloud", "serve"),
        env=child_environment(env),
        ready_line="localcloud ready",
        ready_timeout=ready_timeout,
    )


def parse_ready_line(line: str) -> dict[str, str]:
    """``localcloud ready: metadata=127.0.0.1:8089 pubsub=...`` -> ``{"metadata": "127.0.0.1:8089", ...}``."""
    _, _, rest = line.partition(":")
    pairs = (token.partition("=") for token in rest.split())
    return {name: value for name, sep, value in pairs if sep}
