from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[3]

# What functions-framework does: import itself, then load the function's module (create_app).
LOAD = """
import json, sys
import functions_framework
before = set(sys.modules)
functions_framework.create_app(sys.argv[1], sys.argv[2], sys.argv[3])
print(json.dumps(sorted(set(sys.modules) - before)))
"""

# Each costs 80-550 ms to import; a function loads the ones it uses on the first request that needs them.
HEAVY = ("grpc", "google.cloud", "google.api_core", "google.auth", "google.pubsub_v1", "google.protobuf")


@pytest.mark.parametrize(
    ("target", "signature"),
    [("step_executor", "http"), ("start_saga", "cloudevent"), ("saga_completion", "http")],
)
def test_loading_a_function_loads_no_google_client_nor_grpc(target, signature):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FUNCTION_")},
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "shared")]),
    }
    out = subprocess.run(
        [sys.executable, "-c", LOAD, target, f"functions/{target}/main.py", signature],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = json.loads(out.stdout.splitlines()[-1])
    heavy = [m for m in loaded if m in HEAVY or m.startswith(tuple(h + "." for h in HEAVY))]
    assert "main" in loaded
    assert heavy == []
