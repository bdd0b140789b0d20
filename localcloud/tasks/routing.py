"""Queue-level routing: a queue's ``http_target`` applied to each HTTP task at dispatch, as pure functions.

Google's pages (the v2 and v2beta3 ``HttpTarget`` and ``UriOverride`` references,
https://cloud.google.com/tasks/docs/reference/rest/v2beta3/projects.locations.queues#HttpTarget and
https://cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues#HttpTarget; "Configure
queue-level routing", https://cloud.google.com/tasks/docs/configuring-queues#routing):

- Queue-level routing "applies to tasks that are in the queue and tasks that are added to the queue
  after queue-level routing has been set": it is applied when a task is dispatched, never stored on it.
- ``uri_override`` replaces parts of the task's URL: ``scheme`` (HTTP or HTTPS), ``host`` ("cannot be an
  empty string", INVALID_ARGUMENT), ``port`` ("must be a positive integer", 0 clears it),
  ``path_override.path`` and ``query_override.query_params`` (an empty value clears the part). With
  ``uri_override_enforce_mode`` ALWAYS (also the default when unspecified) "queue-level configuration
  overrides all task-level configuration"; with IF_NOT_EXISTS it "is only applied where task-level
  configuration does not exist", i.e. per part: a scheme, host, port, path or query the task's URL lacks.
- ``http_method`` overrides the task's method; "if the value is set to GET the body of the task will be
  ignored at execution time" (done here for every method that carries no body: GET, HEAD, DELETE,
  OPTIONS).
- ``header_overrides`` are set on the request, replacing a task header of the same name (names compared
  case-insensitively); Host, Content-Length, User-Agent and the ``X-CloudTasks-*`` headers are then
  handled by the dispatcher as for any task header.
- "Configuring authentication at the queue level overrides task-level authentication": a queue
  ``oauth_token``/``oidc_token`` replaces the task's; an OIDC token without an audience gets the URL the
  task is sent to.

Decisions where the pages are silent (documented in the README too):

- A task of a queue whose ``uri_override`` names a host may be created with no URL or with a relative
  one (``/path?query``): that is the point of routing at the queue level (BufferTask creates exactly
  such tasks). A URL without a scheme after the overrides gets ``https`` (the http_queues samples: "defaults
  to https").
- A path override without a leading ``/`` gets one.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from google.cloud.tasks_v2.types import target as target_types

HttpRequestPb: Any = target_types.HttpRequest.pb()
Scheme = target_types.UriOverride.Scheme
EnforceMode = target_types.UriOverride.UriOverrideEnforceMode
HttpMethod = target_types.HttpMethod
BODY_METHODS = frozenset({HttpMethod.POST, HttpMethod.PUT, HttpMethod.PATCH})
_RELATIVE = re.compile(r"^(?:[/?].*)?$")


def routes_by_host(target: Any) -> bool:
    """Whether the queue's ``http_target`` names the host every task goes to ("queue-level routing")."""
    override = target.uri_override
    return bool(override.HasField("host") and override.host)


def url_problem(target: Any, url: str) -> str | None:
    """What is wrong with a task's URL in a queue with ``target``, or None. A full ``http(s)://`` URL is
    always fine; an empty or relative one only when the queue supplies the host."""
    if re.match(r"^https?://[^/\s]+", url):
        return None
    if routes_by_host(target) and _RELATIVE.match(url):
        return None
    if routes_by_host(target):
        return "task.http_request.url must be empty, a relative URL (/path?query), or begin with http:// or https://"
    return "task.http_request.url must begin with http:// or https:// and name a host"


def http_target_problems(target: Any, prefix: str) -> list[str]:
    """Every bad field of a queue's ``http_target`` (INVALID_ARGUMENT), named as in the API."""
    problems: list[str] = []
    override = target.uri_override
    if override.HasField("host") and not override.host.strip():
        problems.append(f"{prefix}.uri_override.host must not be empty")
    if override.HasField("port") and override.port < 0:
        problems.append(f"{prefix}.uri_override.port must be a positive integer (0 clears the port)")
    for index, entry in enumerate(target.header_overrides):
        if not entry.header.key.strip():
            problems.append(f"{prefix}.header_overrides[{index}].header.key must not be empty")
    if target.HasField("oidc_token") and not target.oidc_token.service_account_email:
        problems.append(f"{prefix}.oidc_token.service_account_email is required")
    if target.HasField("oauth_token") and not target.oauth_token.service_account_email:
        problems.append(f"{prefix}.oauth_token.service_account_email is required")
    return problems


def routed(queue: Any, request: Any) -> Any:
    """The HTTP request a task of ``queue`` (a v2 ``Queue``) is sent as: the task's ``request`` with the
    queue's ``http_target`` applied. The task's own message is never changed; without an ``http_target``
    the task's request itself is returned."""
    if not queue.HasField("http_target"):
        return request
    target = queue.http_target
    effective = HttpRequestPb()
    effective.CopyFrom(request)
    if target.HasField("uri_override"):
        effective.url = routed_url(target.uri_override, request.url)
    if target.http_method:
        effective.http_method = target.http_method
    if (effective.http_method or HttpMethod.POST) not in BODY_METHODS:
        effective.ClearField("body")
    for entry in target.header_overrides:
        for key in [k for k in effective.headers if k.lower() == entry.header.key.lower()]:
            del effective.headers[key]
        effective.headers[entry.header.key] = entry.header.value
    if target.HasField("oidc_token"):
        effective.oidc_token.CopyFrom(target.oidc_token)
    elif target.HasField("oauth_token"):
        effective.oauth_token.CopyFrom(target.oauth_token)
    return effective


def routed_url(override: Any, url: str) -> str:
    """``url`` (full, relative or empty) with the ``UriOverride`` applied part by part."""
    parts = urlsplit(url)
    always = override.uri_override_enforce_mode != EnforceMode.IF_NOT_EXISTS
    scheme = parts.scheme
    if override.HasField("scheme") and override.scheme and (always or not scheme):
        scheme = "http" if override.scheme == Scheme.HTTP else "https"
    host = parts.hostname or ""
    if override.HasField("host") and (always or not host):
        host = override.host
    port = _port(parts)
    if override.HasField("port") and (always or port is None):
        port = override.port or None
    path = parts.path
    if override.HasField("path_override") and (always or not path):
        path = override.path_override.path
    if path and not path.startswith("/"):
        path = "/" + path
    query = parts.query
    if override.HasField("query_override") and (always or not query):
        query = override.query_override.query_params
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    return urlunsplit((scheme or "https", netloc, path, query, parts.fragment))


def _port(parts: Any) -> int | None:
    try:
        return parts.port
    except ValueError:  # not a number: the dispatch fails on the URL as it would without the override
        return None
