"""The HTTP client of step_executor: participant calls and Workflows callbacks, on urllib3's pools.

Built straight on ``urllib3.PoolManager`` (the library under ``requests``): per call it costs about half
the CPU of a ``requests.Session``, which re-merges settings, cookies and hooks on every request. What
the session did and the saga relies on is kept here, explicitly:

- one pool per origin, shared by the instance's request threads; a pooled connection the peer has
  closed is noticed before reuse (urllib3 polls it), and one that fails anyway fails like any
  transient error, and Cloud Tasks retries the attempt;
- no redirect is followed and urllib3 never retries: one call is one request;
- ``connect_timeout`` bounds connecting, ``read_timeout`` each read of the answer;
- the answer's body is read up to ``max_body`` bytes (+1, to tell that it is over): a participant
  cannot make the instance hold more;
- TLS is always verified: against ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` (a file, or a directory
  of hashed certificates) when set, as requests would, else against certifi's bundle (requests'
  default);
- calls go straight to the host: no proxy and no ``.netrc`` credentials from the environment;
- a guarded client (``guarded(check)``, what step_executor uses) asks ``check`` for the call's
  ``egress.Destination`` first (which resolves the name and checks every address, see ``egress``) and
  connects only to those addresses, in order, trying the next one only when connecting was refused
  (never after a timeout, and never once a request was sent): no second DNS lookup. ``Host:`` carries
  the URL's host, and for https the TLS handshake sends it (SNI) and the certificate is verified
  against it, not against the address. A refusal raises ``egress.EgressRefusedError`` (an
  ``HttpCallError``) before any connection.

Header values are never part of an error message. Implements ``ports.HttpTransport`` (whose module
also holds ``HttpAnswer`` and ``HttpCallError``, re-exported here).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

import urllib3
import urllib3.exceptions
from urllib3.response import BaseHTTPResponse

from saga_orchestrator.egress import Destination
from saga_orchestrator.ports import HttpAnswer, HttpCallError

USER_AGENT = "saga-orchestrator"
CA_BUNDLE_VARS = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")

__all__ = ["CA_BUNDLE_VARS", "USER_AGENT", "HttpAnswer", "HttpCallError", "HttpClient", "default_client"]


Check = Callable[[str], Destination]


def ca_bundle(env: Mapping[str, str]) -> str | None:
    """The CA bundle ``env`` names, as requests reads it: ``REQUESTS_CA_BUNDLE``, else ``CURL_CA_BUNDLE``."""
    return next((env[name] for name in CA_BUNDLE_VARS if env.get(name)), None)


class HttpClient:
    """Thread-safe; one per process (its ``guarded`` views share its pools)."""

    def __init__(self, *, ca_bundle: str | None = None, num_pools: int = 16, maxsize: int = 32) -> None:
        tls: dict[str, str] = {"cert_reqs": "CERT_REQUIRED"}
        if ca_bundle and os.path.isdir(ca_bundle):
            tls["ca_cert_dir"] = ca_bundle
        else:
            # A missing file makes every https call fail (TLS cannot be set up); plain http still works.
            tls["ca_certs"] = ca_bundle or _certifi_bundle()
        self.tls: Mapping[str, str] = tls
        self._pools = urllib3.PoolManager(num_pools, None, retries=False, maxsize=maxsize, **tls)
        self._check: Check | None = None

    def guarded(self, check: Check) -> HttpClient:
        """A view of this client (same pools) that calls only where ``check`` says, e.g.
        ``Egress(settings).destination``."""
        view = object.__new__(HttpClient)
        view.tls, view._pools, view._check = self.tls, self._pools, check
        return view

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> HttpClient:
        return cls(ca_bundle=ca_bundle(env))

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        connect_timeout: float,
        read_timeout: float,
        max_body: int,
    ) -> HttpAnswer:
        """One request, never retried, never redirected. Raises ``HttpCallError`` when there is no answer."""
        sent = dict(headers)
        if not any(name.lower() == "user-agent" for name in sent):
            sent["User-Agent"] = USER_AGENT
        # Raises EgressRefusedError, or HttpCallError when the name does not resolve: before connecting.
        destination = self._check(url) if self._check is not None else None
        options: dict[str, Any] = {
            "body": body,
            "headers": sent,
            "timeout": urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            "retries": False,
            "redirect": False,
            "preload_content": False,
        }
        try:
            if destination is None:
                response = self._pools.urlopen(method, url, **options)
            else:
                response = self._open(destination, method, options)
            try:
                data = response.read(max_body + 1)
                truncated = len(data) > max_body
                if truncated:
                    # The rest stays unread: the connection cannot be reused.
                    response.close()
            finally:
                response.release_conn()
        except urllib3.exceptions.NewConnectionError as error:  # a ConnectTimeoutError subclass
            raise HttpCallError("connection", _describe(error)) from None
        except urllib3.exceptions.TimeoutError as error:
            raise HttpCallError("timeout", _describe(error)) from None
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.SSLError, OSError) as error:
            raise HttpCallError("connection", _describe(error)) from None
        except urllib3.exceptions.HTTPError as error:
            raise HttpCallError("request", _describe(error)) from None
        return HttpAnswer(response.status, data, response.headers.get("Content-Type", ""), truncated)

    def _open(self, destination: Destination, method: str, options: dict[str, Any]) -> BaseHTTPResponse:
        """Send the request to the destination's first address that accepts a connection."""
        if not any(name.lower() == "host" for name in options["headers"]):
            options["headers"] = {**options["headers"], "Host": destination.host_header}
        pool_kwargs: dict[str, Any] = {}
        if destination.scheme == "https" and not destination.is_literal:
            pool_kwargs = {"server_hostname": destination.host, "assert_hostname": destination.host}
        refused: urllib3.exceptions.NewConnectionError | None = None
        for address in destination.addresses:
            pool = self._pools.connection_from_host(
                address, destination.port, destination.scheme, pool_kwargs=pool_kwargs
            )
            try:
                return pool.urlopen(method, destination.path, assert_same_host=False, **options)
            except urllib3.exceptions.NewConnectionError as error:
                refused = error  # not a timeout (ConnectTimeoutError): nothing was sent; try the next
        if refused is None:
            raise HttpCallError("connection", f"no address to connect to for {destination.host!r}")
        raise refused


def _describe(error: BaseException) -> str:
    """The error's type and reason, without urllib3's object reprs."""
    reason = getattr(error, "reason", None) or (error.args[0] if error.args else None) or error
    text = str(reason)
    if ">: " in text and text.startswith("<"):
        text = text.split(">: ", 1)[1]
    return f"{type(error).__name__}: {text}"


def _certifi_bundle() -> str:
    import certifi

    return str(certifi.where())


_default: HttpClient | None = None
_default_lock = threading.Lock()


def default_client() -> HttpClient:
    """The process-wide client, built from ``os.environ`` the first time it is needed."""
    global _default
    with _default_lock:
        if _default is None:
            _default = HttpClient.from_env(os.environ)
        return _default
