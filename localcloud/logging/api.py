"""Cloud Logging RPC handlers, named after the RPCs of ``google.logging.v2.LoggingServiceV2``.

Requests and answers are the REST (JSON) bodies of ``entries.write`` and ``entries.list``; every rule
lives in :mod:`localcloud.logging.state`. Errors are ``google.api_core.exceptions``, which the HTTP shell
turns into Google's JSON error body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.api_core import exceptions as gexc

from localcloud.logging.state import LogStore

# The fields of each request body (https://cloud.google.com/logging/docs/reference/v2/rest/v2/entries).
WRITE_FIELDS = frozenset({"logName", "resource", "labels", "entries", "partialSuccess", "dryRun"})
LIST_FIELDS = frozenset({"projectIds", "resourceNames", "filter", "orderBy", "pageSize", "pageToken"})


class LoggingApi:
    def __init__(self, store: LogStore) -> None:
        self.store = store

    def WriteLogEntries(self, request: Mapping[str, Any]) -> dict[str, Any]:
        check_fields(request, WRITE_FIELDS)
        self.store.write(request)
        return {}

    def ListLogEntries(self, request: Mapping[str, Any]) -> dict[str, Any]:
        check_fields(request, LIST_FIELDS)
        return self.store.list(request)


def check_fields(request: Mapping[str, Any], known: frozenset[str]) -> None:
    """Google's JSON parser refuses a field the message does not have, with this message."""
    for name in request:
        if name not in known:
            raise gexc.InvalidArgument(
                f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.'
            )
