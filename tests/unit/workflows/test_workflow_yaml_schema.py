"""The saga workflow is valid by the official Cloud Workflows JSON schema.

The schema is the one Google publishes in workflows-samples (``jsonschema/workflows.json``); the
``workflows-emulator`` package on PyPI ships the same file as ``workflow-schema.json``. It is fetched at
test time with pip (never copied into this repository) and cached under ``.venv``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
WORKFLOW = ROOT / "workflows" / "saga_orchestrator.yaml"
SCHEMA_PACKAGE = "workflows-emulator==1.10.0"
CACHE = ROOT / ".venv" / "cache" / "workflow-schema.json"


def official_schema() -> dict:
    if not CACHE.exists():
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        download = CACHE.parent / "wheel"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                "-d",
                str(download),
                SCHEMA_PACKAGE,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        wheels = list(download.glob("*.whl"))
        if result.returncode != 0 or not wheels:
            pytest.fail(f"could not fetch {SCHEMA_PACKAGE} for its workflow schema: {result.stderr[-500:]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            CACHE.write_bytes(wheel.read("workflows_emulator/workflow-schema.json"))
    return json.loads(CACHE.read_text())


def test_saga_workflow_is_valid_by_the_official_schema() -> None:
    schema = official_schema()
    document = yaml.safe_load(WORKFLOW.read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])


def test_schema_check_rejects_a_step_with_an_unknown_key() -> None:
    schema = official_schema()
    broken = {"main": {"steps": [{"first": {"assign": [{"x": 1}], "bogus": True}}]}}
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))
