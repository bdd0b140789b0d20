"""``ManagedProcess.kill`` is a crash of the whole group (no SIGTERM handler runs) and ``restart`` runs the
same spec again, on the same port, into the same log."""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

from devstack.processes import ManagedProcess, ProcessSpec, free_ports

# Serves its pid on PORT; a grandchild shares its group; SIGTERM would print "terminated".
SERVER = """
import http.server, os, signal, subprocess, sys
signal.signal(signal.SIGTERM, lambda *_: (print("terminated", flush=True), sys.exit(0)))
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print("grandchild", child.pid, flush=True)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = str(os.getpid()).encode()
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def log_message(self, *args): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def served_pid(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        return int(response.read())


def test_kill_ends_the_whole_group_at_once_and_restart_serves_the_same_port_again(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    spec = ProcessSpec(
        name="server",
        argv=(sys.executable, "-c", SERVER),
        env={**os.environ, "PORT": str(port)},
        ready_url=f"http://127.0.0.1:{port}/",
        ready_timeout=20,
    )
    process = ManagedProcess.start(spec, log_dir=tmp_path)
    try:
        process.wait_ready()
        first = served_pid(port)
        grandchild = int(process.output_tail().split("grandchild ")[1].split()[0])

        process.kill()
        assert not alive(first) and not alive(grandchild) and not process.alive()

        process.restart()
        second = served_pid(port)
        assert second == process.pid != first and process.alive()
    finally:
        process.stop()
    log = (tmp_path / "server.log").read_text(encoding="utf-8")
    assert log.count("grandchild") == 2  # both runs, one log
    assert log.count("terminated") == 1  # the kill ran no handler; the final stop did
