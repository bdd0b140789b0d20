"""``http.*``: https://cloud.google.com/workflows/docs/reference/stdlib/http/request

Body encoding (same page): a bytes body without a Content-Type is sent as ``application/octet-stream``;
any other body without a Content-Type is JSON-encoded with ``application/json; charset=utf-8``; with a
Content-Type, JSON types get JSON, ``application/x-www-form-urlencoded`` maps get a form, strings go as
UTF-8 text. Responses with a JSON Content-Type are decoded; ``text/*`` becomes a string; anything else
stays bytes. The timeout runs on the host clock, so tests drive it with a ManualClock.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from localcloud.clock import SystemClock
from localcloud.workflows.engine.host import Host
from localcloud.workflows.engine.stdlib.registry import builtin
from localcloud.workflows.lang.errors import WorkflowError
from localcloud.workflows.lang.values import is_number, to_string, type_error, type_name

DEFAULT_TIMEOUT_SECONDS = 300.0
MAX_TIMEOUT_SECONDS = 1800.0
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
MAX_RESPONSE_BYTES = 2 * 1024 * 1024
RETRY_CODES = frozenset({429, 502, 503, 504})
RETRY_TAGS = frozenset({"ConnectionError", "ConnectionFailedError", "TimeoutError"})
RETRY_CODES_NON_IDEMPOTENT = frozenset({429, 503})
RETRY_TAGS_NON_IDEMPOTENT = frozenset({"ConnectionFailedError"})


def _value_error(message: str) -> WorkflowError:
    return WorkflowError.tagged("ValueError", message)


def _query_pairs(query: Any) -> list[tuple[str, str]]:
    if not isinstance(query, dict):
        raise type_error("http: query must be a map")
    pairs: list[tuple[str, str]] = []
    for key, value in query.items():
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, str | int | float | bool):
                raise type_error(f"http: query value of {key!r} must be a string, number or boolean")
            pairs.append((key, to_string(item)))
    return pairs


def _encode_body(body: Any, headers: dict[str, str]) -> bytes | None:
    if body is None:
        return None
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    if content_type is None:
        if isinstance(body, bytes):
            headers["Content-Type"] = "application/octet-stream"
            return body
        headers["Content-Type"] = "application/json; charset=utf-8"
        return jsonlib.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    lowered = content_type.lower()
    if isinstance(body, bytes):
        return body
    if "json" in lowered:
        return jsonlib.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    if lowered.startswith("application/x-www-form-urlencoded") and isinstance(body, dict):
        return urllib.parse.urlencode(_query_pairs(body)).encode()
    if isinstance(body, str):
        return body.encode()
    raise type_error(f"http: cannot encode a {type_name(body)} body as {content_type}")


def _decode_body(content_type: str, raw: bytes) -> Any:
    lowered = content_type.lower()
    if "json" in lowered:
        try:
            return jsonlib.loads(raw.decode() or "null")
        except (UnicodeDecodeError, ValueError):
            return raw.decode(errors="replace")
    if lowered.startswith("text/") or "charset" in lowered:
        return raw.decode(errors="replace")
    if not raw:
        return None
    return raw


def _auth_header(host: Host, auth: Any, url: str) -> str:
    if not isinstance(auth, dict) or not isinstance(auth.get("type"), str):
        raise type_error("http: auth must be a map with a type")
    kind = auth["type"].upper()
    if kind == "OIDC":
        audience = auth.get("audience") or url
        return "Bearer " + host.id_token(str(audience))
    if kind == "OAUTH2":
        requested = auth.get("scopes", auth.get("scope", ()))
        if isinstance(requested, str):
            requested = requested.replace(",", " ").split()
        if not isinstance(requested, list | tuple) or not all(isinstance(s, str) for s in requested):
            raise type_error("http: auth scopes must be a string or a list of strings")
        return "Bearer " + host.access_token(tuple(requested))
    raise _value_error(f"http: unknown auth type {auth['type']!r}")


async def request(
    host: Host,
    method: Any,
    url: Any,
    timeout: Any = DEFAULT_TIMEOUT_SECONDS,
    body: Any = None,
    headers: Any = None,
    query: Any = None,
    auth: Any = None,
    private_service_name: Any = None,
    ca_certificate: Any = None,
) -> dict[str, Any]:
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise _value_error(f"http.request: unsupported method {method!r}")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise _value_error(f"http: url must be an http(s) URL, got {url!r}")
    if not is_number(timeout) or timeout <= 0:
        raise type_error("http: timeout must be a positive number of seconds")
    if timeout > MAX_TIMEOUT_SECONDS:
        raise _value_error(f"http: timeout must be at most {MAX_TIMEOUT_SECONDS:g} seconds")
    sent: dict[str, str] = {}
    if headers is not None:
        if not isinstance(headers, dict):
            raise type_error("http: headers must be a map")
        sent = {k: to_string(v) for k, v in headers.items()}
    if query is not None:
        separator = "&" if urllib.parse.urlsplit(url).query else "?"
        url = url + separator + urllib.parse.urlencode(_query_pairs(query))
    if auth is not None:
        sent["Authorization"] = _auth_header(host, auth, url.split("?")[0])
    data = _encode_body(body, sent)
    session: aiohttp.ClientSession | None = getattr(host, "http_session", None)
    sending = _send(session, method.upper(), url, sent, data)
    if isinstance(host.clock, SystemClock):  # a timer handle, not a second task
        try:
            async with asyncio.timeout(float(timeout)):
                code, response_headers, content_type, raw = await sending
        except TimeoutError:
            raise _timed_out(url, timeout) from None
    else:
        call = asyncio.ensure_future(sending)
        timer = asyncio.ensure_future(host.clock.sleep(float(timeout)))
        try:
            done, _ = await asyncio.wait({call, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            if not call.done():
                call.cancel()
        if call not in done:
            raise _timed_out(url, timeout)
        code, response_headers, content_type, raw = call.result()
    result = {"body": _decode_body(content_type, raw), "code": code, "headers": response_headers}
    if code >= 400:
        raise WorkflowError.tagged("HttpError", f"HTTP server responded with error code {code}", **result)
    return result


def _timed_out(url: str, timeout: Any) -> WorkflowError:
    return WorkflowError.tagged("TimeoutError", f"http request to {url} timed out after {timeout} s")


def new_session() -> aiohttp.ClientSession:
    """A session ``http.*`` calls can share (a host offers it as ``http_session``): pooled keep-alive
    connections, no cookie jar (no call may see another's cookies), no connection limit and no timeout
    of its own (each call's ``timeout`` bounds it). Create it on the loop that will use it."""
    return aiohttp.ClientSession(
        # idle connections go after 1 s, before common servers drop them (gunicorn: 2 s), so a call
        # rarely meets a connection the server is just closing
        connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=1.0),
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None),
        auto_decompress=True,
    )


async def _send(
    shared: aiohttp.ClientSession | None, method: str, url: str, headers: dict[str, str], data: bytes | None
) -> tuple[int, dict[str, str], str, bytes]:
    try:
        if shared is not None and not shared.closed:
            return await _exchange(shared, method, url, headers, data)
        async with aiohttp.ClientSession(auto_decompress=True) as session:
            return await _exchange(session, method, url, headers, data)
    except (aiohttp.ClientConnectorError, aiohttp.InvalidURL) as error:
        raise WorkflowError.tagged("ConnectionFailedError", f"connection to {url} failed: {error}") from None
    except (aiohttp.ClientError, ConnectionError) as error:
        raise WorkflowError.tagged("ConnectionError", f"connection to {url} broke: {error}") from None


async def _read_capped(content: aiohttp.StreamReader, limit: int) -> bytes:
    """The body, or its first ``limit + 1`` bytes when it is longer: ``read(n)`` answers with what has
    arrived so far (at most n), so a large body is read until it ends or passes the limit."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def _exchange(
    session: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str], data: bytes | None
) -> tuple[int, dict[str, str], str, bytes]:
    async with session.request(method, url, headers=headers, data=data, allow_redirects=False) as response:
        raw = await _read_capped(response.content, MAX_RESPONSE_BYTES)
        if len(raw) > MAX_RESPONSE_BYTES:
            raise WorkflowError.tagged("ResourceLimitError", "HTTP response exceeds the 2 MB limit")
        response_headers: dict[str, str] = {}
        for key, value in response.headers.items():
            response_headers[key] = (
                value if key not in response_headers else response_headers[key] + ", " + value
            )
        return response.status, response_headers, response.headers.get("Content-Type", ""), raw


builtin("http.request", blocking=True)(request)


def _shorthand(method: str) -> Callable[..., Awaitable[dict[str, Any]]]:
    """``http.get`` and its siblings: ``http.request`` with the method fixed (same arguments, no ``method``)."""

    async def call(
        host: Host,
        url: Any,
        timeout: Any = DEFAULT_TIMEOUT_SECONDS,
        body: Any = None,
        headers: Any = None,
        query: Any = None,
        auth: Any = None,
        private_service_name: Any = None,
        ca_certificate: Any = None,
    ) -> dict[str, Any]:
        return await request(host, method, url, timeout, body, headers, query, auth)

    call.__name__ = method.lower()
    return call


for _method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
    builtin(f"http.{_method.lower()}", blocking=True)(_shorthand(_method))


def _retryable(e: Any, codes: frozenset[int], tags: frozenset[str]) -> bool:
    if not isinstance(e, dict):
        return False
    raw_tags = e.get("tags")
    error_tags: list[Any] = raw_tags if isinstance(raw_tags, list) else []
    if "HttpError" in error_tags and e.get("code") in codes:
        return True
    return any(tag in tags for tag in error_tags)


@builtin("http.default_retry_predicate")
def default_retry_predicate(host: Host, e: Any) -> bool:
    """https://cloud.google.com/workflows/docs/reference/stdlib/http/default_retry_predicate: HTTP 429, 502,
    503, 504 and connection/timeout errors; 500 is not retried."""
    return _retryable(e, RETRY_CODES, RETRY_TAGS)


@builtin("http.default_retry_predicate_non_idempotent")
def default_retry_predicate_non_idempotent(host: Host, e: Any) -> bool:
    return _retryable(e, RETRY_CODES_NON_IDEMPOTENT, RETRY_TAGS_NON_IDEMPOTENT)


HTTP_FUNCTIONS = frozenset({"http.request", "http.get", "http.post", "http.put", "http.patch", "http.delete"})
