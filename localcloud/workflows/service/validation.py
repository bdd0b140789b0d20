"""The checks on what clients send, each reporting every problem at once as one INVALID_ARGUMENT.

Limits (https://cloud.google.com/workflows/quotas): source at most 128 KB; an execution argument at most
32 KB of JSON; a description at most 1,000 characters; at most 64 labels, keys starting with a lowercase
letter, keys and values at most 63 lowercase letters, digits, underscores and dashes; at most 20 user
environment variables, none named ``GOOGLE*`` or ``WORKFLOWS*``, each at most 4 KiB.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud.workflows_v1.types import workflows as wf

MAX_SOURCE_BYTES = 128 * 1024
MAX_ARGUMENT_BYTES = 32 * 1024
MAX_DESCRIPTION_CHARS = 1000
MAX_LABELS = 64
MAX_ENV_VARS = 20
MAX_ENV_VALUE_BYTES = 4 * 1024

_WORKFLOW_ID = re.compile(r"^[A-Za-z](?:[A-Za-z0-9_-]{0,62}[A-Za-z0-9])?$")
_LABEL_KEY = re.compile(r"^[\w-]{0,63}$")
_PARENT = re.compile(r"^projects/([^/]+)/locations/([^/]+)$")


def parent_of(parent: str) -> tuple[str, str]:
    """The (project, location) of ``projects/P/locations/L``."""
    match = _PARENT.match(parent)
    if match is None:
        raise gexc.InvalidArgument(f"parent must look like projects/P/locations/L, got {parent!r}")
    return match.group(1), match.group(2)


def check_workflow_id(workflow_id: str) -> None:
    if not _WORKFLOW_ID.match(workflow_id):
        raise gexc.InvalidArgument(
            "workflow_id must contain only letters, numbers, underscores and hyphens, start with a letter, "
            "end with a letter or number and be 1-64 characters long"
        )


def check_source(source: str) -> None:
    if not source.strip():
        raise gexc.InvalidArgument("workflow source_contents must not be empty")
    if len(source.encode()) > MAX_SOURCE_BYTES:
        raise gexc.InvalidArgument(f"workflow source exceeds the {MAX_SOURCE_BYTES // 1024} KB limit")


def check_workflow_fields(workflow: wf.Workflow, *, check_source: bool = True) -> None:
    problems: list[str] = []
    if check_source and not workflow.source_contents:
        problems.append("source_contents is required")
    if len(workflow.description) > MAX_DESCRIPTION_CHARS:
        problems.append(f"description must be at most {MAX_DESCRIPTION_CHARS} characters")
    problems += label_problems(workflow.labels)
    problems += _env_problems(dict(workflow.user_env_vars))
    if problems:
        raise gexc.InvalidArgument("; ".join(problems))


def checked_execution(argument: str, labels: Mapping[str, str]) -> Any:
    """``argument`` decoded (None if empty), once the argument and the labels pass their checks."""
    problems: list[str] = []
    decoded = None
    if len(argument.encode()) > MAX_ARGUMENT_BYTES:
        problems.append(f"argument exceeds the {MAX_ARGUMENT_BYTES // 1024} KB limit")
    elif argument:
        try:
            decoded = json.loads(argument)
        except ValueError as error:
            problems.append(f"argument is not valid JSON: {error}")
    problems += label_problems(labels)
    if problems:
        raise gexc.InvalidArgument("; ".join(problems))
    return decoded


def label_problems(labels: Mapping[str, str]) -> list[str]:
    problems: list[str] = []
    if len(labels) > MAX_LABELS:
        problems.append(f"labels may hold at most {MAX_LABELS} entries")
    for key, value in labels.items():
        if not key or not key[0].isalpha() or not key[0].islower() or not _lowercase_word(key):
            problems.append(
                f"label key {key!r} must start with a lowercase letter and contain at most 63 lowercase "
                "letters, digits, underscores and dashes"
            )
        if not _lowercase_word(value):
            problems.append(
                f"label value {value!r} of {key!r} must contain at most 63 lowercase letters, digits, "
                "underscores and dashes"
            )
    return problems


def service_account_email(value: str) -> str:
    """The email of ``projects/{project}/serviceAccounts/{account}`` or of a bare ``{account}``."""
    return value.rsplit("/serviceAccounts/", 1)[-1] if value else ""


def _env_problems(env: Mapping[str, str]) -> list[str]:
    problems: list[str] = []
    if len(env) > MAX_ENV_VARS:
        problems.append(f"user_env_vars may hold at most {MAX_ENV_VARS} variables, got {len(env)}")
    for key, value in env.items():
        if not key:
            problems.append("user_env_vars keys must not be empty")
        elif key.startswith(("GOOGLE", "WORKFLOWS")):
            problems.append(f"user_env_vars key {key!r} must not start with GOOGLE or WORKFLOWS")
        if len(key.encode()) > MAX_ENV_VALUE_BYTES or len(value.encode()) > MAX_ENV_VALUE_BYTES:
            problems.append(f"user_env_vars entry {key!r} exceeds 4 KiB")
    return problems


def _lowercase_word(text: str) -> bool:
    return bool(_LABEL_KEY.match(text)) and not any(c.isupper() for c in text)
