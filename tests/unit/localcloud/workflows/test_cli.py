from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "localcloud", "workflows", "run", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_prints_the_result_as_json_and_exits_0(tmp_path: Path) -> None:
    workflow = tmp_path / "w.yaml"
    workflow.write_text("main:\n  params: [args]\n  steps:\n    - r:\n        return: ${args.n / 2}\n")
    completed = run_cli(str(workflow), "--data", '{"n": 3}')
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout) == 1.5


def test_cli_prints_the_error_map_and_exits_1(tmp_path: Path) -> None:
    workflow = tmp_path / "w.yaml"
    workflow.write_text("- r:\n    raise:\n      code: 7\n      message: nope\n")
    completed = run_cli(str(workflow))
    assert completed.returncode == 1
    assert json.loads(completed.stdout) == {"code": 7, "message": "nope"}


def test_cli_reports_deploy_errors_with_a_caret_and_exits_2(tmp_path: Path) -> None:
    workflow = tmp_path / "w.yaml"
    workflow.write_text("- r:\n    return: ${1 + + }\n")
    completed = run_cli(str(workflow))
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert "step 'r', line 2" in completed.stderr
    assert "^" in completed.stderr


def test_cli_logs_go_to_stderr_as_json_lines(tmp_path: Path) -> None:
    workflow = tmp_path / "w.yaml"
    workflow.write_text(
        "- l:\n    call: sys.log\n    args:\n      text: hi\n      severity: WARNING\n- r:\n    return: 1\n"
    )
    completed = run_cli(str(workflow))
    assert completed.returncode == 0
    assert json.loads(completed.stdout) == 1
    assert json.loads(completed.stderr.splitlines()[0]) == {"severity": "WARNING", "message": "hi"}
