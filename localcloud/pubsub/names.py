"""Resource-name checks for topics, subscriptions, snapshots and schemas.

Rules (https://cloud.google.com/pubsub/docs/pubsub-basics#resource_names): the id starts with a letter,
is 3-255 characters of letters, digits and ``- _ . ~ + %``, and does not start with ``goog``.
"""

from __future__ import annotations

import re

from google.api_core import exceptions as gexc

DELETED_TOPIC = "_deleted-topic_"
_ID = r"[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}"
_PROJECT = r"[A-Za-z0-9\-.:]+"


def _check(name: str, collection: str, field: str) -> tuple[str, str]:
    match = re.fullmatch(rf"projects/({_PROJECT})/{collection}/(.*)", name or "")
    if match is None:
        raise gexc.InvalidArgument(f"Invalid [{field}] name: ({name!r})")
    project, resource_id = match.groups()
    if not re.fullmatch(_ID, resource_id) or resource_id.lower().startswith("goog"):
        raise gexc.InvalidArgument(
            f"Invalid [{field}] name: ({name!r}): the id must start with a letter, be 3-255 characters of "
            "letters, digits and -_.~+%, and not start with 'goog'"
        )
    return project, resource_id


def topic(name: str, field: str = "topics") -> tuple[str, str]:
    return _check(name, "topics", field)


def subscription(name: str, field: str = "subscriptions") -> tuple[str, str]:
    return _check(name, "subscriptions", field)


def snapshot(name: str, field: str = "snapshots") -> tuple[str, str]:
    return _check(name, "snapshots", field)


def project(name: str, field: str = "project") -> str:
    match = re.fullmatch(rf"projects/({_PROJECT})", name or "")
    if match is None:
        raise gexc.InvalidArgument(f"Invalid [{field}] name: ({name!r})")
    return match.group(1)


def schema(name: str, field: str = "name") -> tuple[str, str]:
    return _check(name, "schemas", field)
