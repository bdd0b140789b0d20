"""Where the step executor may send a request: the host allowlist, and the addresses it never calls.

Egress is decided on the address a call connects to, not only on the URL's spelling of it:

1. The URL: scheme http or https, no credentials, a host. A host written as a non-standard spelling of
   an IPv4 address (``0x7f.0.0.1``, ``2130706433``, ``0177.0.0.1``, ``127.1``) is refused outright.
2. The name: the host matches an entry of ``SAGA_ALLOWED_HOSTS``. An entry is a host
   (``api.example.com``, ``10.0.0.5``, ``::1``), a host and port (``api.example.com:8443``,
   ``[::1]:8080``; without a port any port matches) or a wildcard (``*.example.com``: any subdomain, not
   the domain itself). The metadata server's names and ``GCE_METADATA_HOST`` are never called.
3. The address: an IP literal is its own address; a name is resolved at call time (the resolver is
   injected, ``socket.getaddrinfo`` by default; answers are kept ``RESOLVE_CACHE_SECONDS``), and the
   call connects to the checked addresses only, never to a second lookup. Every address is normalised:
   an IPv6 address that carries an IPv4 one (``::ffff:a.b.c.d``, ``::a.b.c.d``, 6to4 ``2002::/16``,
   NAT64 ``64:ff9b::/96``, Teredo) is judged by the IPv4 address too, and a zone (``fe80::1%eth0``) is
   dropped. Then:

   - link-local (``169.254.0.0/16``, ``fe80::/10``) and the metadata server's addresses are refused
     always, whatever the allowlist says: the metadata server hands out the function's own credentials;
   - an internal address (loopback, private, unique-local, CGNAT ``100.64.0.0/10``, unspecified,
     multicast, reserved or otherwise not globally routable) is refused unless an allowlist entry names
     it explicitly: an entry that is the URL's host name or that address (a wildcard never admits an
     internal address). Local development lists loopback so: ``SAGA_ALLOWED_HOSTS=127.0.0.1,localhost``;
   - any other (public) address is called.

   One refused address refuses the name, even if the name has others.

The URL rules (1, 2, and 3 for IP literals) run at the door (``host_error``, every step URL, no DNS);
the whole rule runs again on every task attempt (``Egress.destination``), before any connection.
The Workflows callback URL of Google Cloud (``https://workflowexecutions.googleapis.com/...``) needs no
allowlist entry; its addresses are checked all the same.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import SplitResult, urlsplit

from saga_orchestrator.ports import HttpCallError
from saga_orchestrator.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# ``socket.getaddrinfo(host, port, family, type)``: ``(family, type, proto, canonname, sockaddr)`` tuples.
Resolver = Callable[[str, int, int, int], Sequence[tuple[Any, ...]]]

# Hosts a participant URL may never name, whatever the allowlist says.
ALWAYS_DENIED_HOSTS: tuple[str, ...] = ("metadata.google.internal", "metadata", "169.254.169.254")
# The metadata server's addresses: IPv4 (link-local anyway) and IPv6 on IPv6-only Compute Engine
# instances (unique-local, so internal anyway; never admitted, even when listed).
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd20:ce::254")}
)
# Workflows callback URLs on Google Cloud live here; locally the allowlist decides.
WORKFLOWS_CALLBACK_HOST = "workflowexecutions.googleapis.com"
# How long a resolved name's addresses are reused. getaddrinfo does not tell the record's TTL; a few
# seconds keep a busy instance from resolving per call and still follow DNS changes promptly.
RESOLVE_CACHE_SECONDS = 5.0
_RESOLVE_CACHE_ENTRIES = 512

_DENIED_KINDS = frozenset({"metadata server", "link-local"})
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_PRIVATE = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_IPV4_PART = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*")

Verdict = Literal["denied", "unlisted"]
Refusal = Literal["url", "unlisted", "denied", "internal"]


class EgressRefusedError(HttpCallError):
    """A call egress refuses, before any connection. ``reason``: ``url`` (scheme, credentials, spelling),
    ``unlisted``, ``denied`` (metadata server or link-local) or ``internal``; ``address``: the address
    that decided, when one did. Another try gets the same answer until the allowlist or DNS change, so
    the executor reports it as ``invalid`` and does not retry it."""

    def __init__(
        self, host: str, message: str, reason: Refusal = "url", address: IPAddress | None = None
    ) -> None:
        super().__init__("request", message)
        self.host = host
        self.reason: Refusal = reason
        self.address = address


@dataclass(frozen=True)
class Destination:
    """Where a call goes: the URL's ``host`` (for ``Host:`` and TLS) and the checked ``addresses`` to
    connect to, in the resolver's order."""

    scheme: str
    host: str
    port: int
    explicit_port: bool
    path: str
    addresses: tuple[str, ...]

    @property
    def is_literal(self) -> bool:
        return parse_address(self.host) is not None

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.explicit_port else host


# --- addresses ---------------------------------------------------------------------------------------


def parse_address(host: str) -> IPAddress | None:
    """The address an IP literal host names (IPv6 without brackets; a zone ``%eth0`` or ``%25eth0`` is
    dropped), or None for a name."""
    try:
        return ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return None


def legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address ``inet_aton`` reads in ``host`` when it is not the dotted-quad spelling: one to four
    parts, each decimal, octal (``0177``) or hex (``0x7f``), the last filling the remaining bytes."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_IPV4_PART.fullmatch(p) for p in parts):
        return None
    values = [_ipv4_part(p) for p in parts]
    last_bits = 8 * (5 - len(values))
    if any(v > 255 for v in values[:-1]) or values[-1] >= 1 << last_bits:
        return None
    number = values[-1]
    for index, value in enumerate(values[:-1]):
        number |= value << (24 - 8 * index)
    address = ipaddress.IPv4Address(number)
    return None if str(address) == host else address


def _ipv4_part(text: str) -> int:
    if text[:2].lower() == "0x":
        return int(text[2:] or "0", 16)
    return int(text, 8) if text.startswith("0") else int(text)


def embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, bool] | None:
    """The IPv4 address an IPv6 address carries, and whether the IPv6 form is only a way to reach it
    (IPv4-mapped and NAT64 are; IPv4-compatible, 6to4 and Teredo are judged on both addresses)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped, True
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), True
    if address in _IPV4_COMPATIBLE and int(address) > 1:
        return ipaddress.IPv4Address(int(address)), False
    if address.sixtofour is not None:
        return address.sixtofour, False
    if address.teredo is not None:
        return address.teredo[1], False
    return None


def _kind(address: IPAddress) -> str | None:
    """What is special about one address (its own range only), or None for a public address."""
    if address in METADATA_ADDRESSES:
        return "metadata server"
    checks: tuple[tuple[bool, str], ...] = (
        (address.is_link_local, "link-local"),
        (address.is_loopback, "loopback"),
        (address.is_unspecified, "unspecified"),
        (address.is_multicast, "multicast"),
        (address in _SHARED, "shared (CGNAT)"),
        (any(address in network for network in _PRIVATE), "private"),
        (isinstance(address, ipaddress.IPv6Address) and address.is_site_local, "site-local"),
        (address.is_reserved or address.is_private or not address.is_global, "reserved"),
    )
    return next((name for hit, name in checks if hit), None)


@functools.lru_cache(maxsize=4096)
def classify(address: IPAddress) -> tuple[str, IPAddress] | None:
    """``(kind, the address that decided)`` for a metadata, link-local or internal address, after
    normalisation; None for a public one. Kinds ``metadata server`` and ``link-local`` are never called."""
    if isinstance(address, ipaddress.IPv6Address):
        address = ipaddress.IPv6Address(int(address))  # without its zone
        inner = embedded_ipv4(address)
        if inner is not None:
            inner_address, transparent = inner
            inner_kind = _kind(inner_address)
            if inner_kind is not None:
                return inner_kind, inner_address
            if transparent:
                return None
    kind = _kind(address)
    return (kind, address) if kind is not None else None


def is_denied(kind: str) -> bool:
    return kind in _DENIED_KINDS


# --- the URL and the allowlist -----------------------------------------------------------------------


def host_error(url: str, settings: Settings) -> str | None:
    """Why ``url`` may not be called, judged on the URL alone (no DNS), or None if it may be."""
    try:
        _check_url(url, settings, callback=False)
    except EgressRefusedError as refused:
        return refused.message
    return None


def _check_url(
    url: str, settings: Settings, *, callback: bool
) -> tuple[SplitResult, str, int, IPAddress | None]:
    """The URL's parts, host, port and the address an IP literal host is, when rules 1, 2 (and 3 for
    an IP literal) admit it; raises ``EgressRefusedError``."""
    parts, host, port, literal = _parse_url(url)
    refusal = None
    if literal is not None:
        refusal = _address_refusal(host, literal, port, settings.allowed_hosts, resolved=False)
        if refusal is not None and refusal.reason == "denied":
            raise refusal
    if callback and parts.scheme == "https" and host == WORKFLOWS_CALLBACK_HOST:
        return parts, host, port, literal
    verdict = _host_verdict(host, port, settings.allowed_hosts, settings.metadata_host)
    if verdict == "denied":
        message = f"host {host!r} is the metadata server or link-local and is never called"
        raise EgressRefusedError(host, message, "denied")
    if verdict == "unlisted":
        bracketed = f"[{host}]" if ":" in host else host
        shown = host if parts.port is None else f"{bracketed}:{parts.port}"
        raise EgressRefusedError(
            host, f"host {shown!r} is not on the allowlist (SAGA_ALLOWED_HOSTS)", "unlisted"
        )
    if refusal is not None:
        raise refusal
    return parts, host, port, literal


def _parse_url(url: str) -> tuple[SplitResult, str, int, IPAddress | None]:
    """The parts, the host (lower case, no trailing dot) and the port (the scheme's when none is given)
    of a URL that passes rule 1; raises ``EgressRefusedError``."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise EgressRefusedError("", f"is not a valid URL ({error})") from None
    host = (parts.hostname or "").rstrip(".").lower()
    if parts.scheme not in ("http", "https"):
        raise EgressRefusedError(host, f"scheme must be http or https, got {parts.scheme or 'none'!r}")
    if not host:
        raise EgressRefusedError(host, "has no host")
    if parts.username is not None or parts.password is not None:
        raise EgressRefusedError(host, "must not carry credentials")
    literal, legacy = _spelling(host)
    if legacy is not None:
        message = f"host {host!r} is a non-standard spelling of the address {legacy} and is never called"
        raise EgressRefusedError(host, message, "url", legacy)
    return parts, host, port if port is not None else (443 if parts.scheme == "https" else 80), literal


@functools.lru_cache(maxsize=1024)
def _spelling(host: str) -> tuple[IPAddress | None, ipaddress.IPv4Address | None]:
    """The address an IP literal host is, and the address a non-standard IPv4 spelling is."""
    return parse_address(host), legacy_ipv4(host)


@functools.lru_cache(maxsize=1024)
def _host_verdict(
    host: str, port: int, allowed_hosts: tuple[str, ...], metadata_host: str | None
) -> Verdict | None:
    """``denied``, ``unlisted`` or None (allowed); a pure function of its arguments, so remembered: a
    step_executor instance checks the same few hosts on every task."""
    if _denied(host, port, metadata_host):
        return "denied"
    if not any(_matches(entry, host, port) for entry in allowed_hosts):
        return "unlisted"
    return None


def _split_host_port(entry: str) -> tuple[str, int | None]:
    entry = entry.strip().lower()
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    host, sep, port = entry.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host.rstrip("."), int(port)
    return entry.rstrip("."), None


def _matches(entry: str, host: str, port: int) -> bool:
    entry_host, entry_port = _split_host_port(entry)
    if entry_port is not None and entry_port != port:
        return False
    if entry_host.startswith("*."):
        return host.endswith(entry_host[1:]) and len(host) > len(entry_host) - 1
    return host == entry_host


@functools.lru_cache(maxsize=1024)
def _explicitly_listed(host: str, address: IPAddress, port: int, allowed_hosts: tuple[str, ...]) -> bool:
    """True when an entry (not a wildcard) is ``host`` or ``address``, on ``port`` or on any port."""
    for entry in allowed_hosts:
        entry_host, entry_port = _split_host_port(entry)
        if entry_host.startswith("*.") or (entry_port is not None and entry_port != port):
            continue
        if entry_host == host or parse_address(entry_host) == address:
            return True
    return False


def _denied(host: str, port: int, metadata_host: str | None) -> bool:
    if host in ALWAYS_DENIED_HOSTS:
        return True
    if metadata_host:
        meta_host, meta_port = _split_host_port(metadata_host)
        if host == meta_host and (meta_port is None or meta_port == port):
            return True
    return False


def _address_refusal(
    host: str, address: IPAddress, port: int, allowed_hosts: tuple[str, ...], *, resolved: bool
) -> EgressRefusedError | None:
    """Why ``host`` may not be reached at ``address`` (resolved from it, or the literal it is)."""
    facts = _refusal_facts(host, address, port, allowed_hosts, resolved)
    return None if facts is None else EgressRefusedError(host, *facts)


@functools.lru_cache(maxsize=1024)
def _refusal_facts(
    host: str, address: IPAddress, port: int, allowed_hosts: tuple[str, ...], resolved: bool
) -> tuple[str, Refusal, IPAddress] | None:
    """``(message, reason, address that decided)`` of ``_address_refusal``; pure, so remembered."""
    verdict = classify(address)
    if verdict is None:
        return None
    kind, decided_by = verdict
    shown = str(decided_by)
    if is_denied(kind):
        if resolved:
            message = (
                f"host {host!r} resolves to {shown}, the metadata server or link-local, which is never called"
            )
        else:
            spelled = "" if shown == host else f" ({shown})"
            message = f"host {host!r} is the metadata server or link-local{spelled} and is never called"
        return message, "denied", decided_by
    if _explicitly_listed(host, address, port, allowed_hosts):
        return None
    if resolved:
        what = f"resolves to {shown}, a {kind} address"
    else:
        what = f"is a {kind} address" + ("" if shown == host else f" ({shown})")
    message = (
        f"host {host!r} {what}; only an allowlist entry naming the host or the address admits it"
        " (SAGA_ALLOWED_HOSTS; a wildcard never does)"
    )
    return message, "internal", decided_by


# --- at call time ----------------------------------------------------------------------------------


class Egress:
    """The whole rule, names resolved: one per step_executor instance; thread-safe."""

    def __init__(
        self,
        settings: Settings,
        *,
        resolver: Resolver = socket.getaddrinfo,
        clock: Callable[[], float] = time.monotonic,
        cache_seconds: float = RESOLVE_CACHE_SECONDS,
    ) -> None:
        self.settings = settings
        self._resolver = resolver
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, tuple[IPAddress, ...]]] = {}
        self._lock = threading.Lock()
        meta_host, self._metadata_port = _split_host_port(settings.metadata_host or "")
        self._metadata_host = meta_host or None
        self._metadata_literal = parse_address(meta_host) if meta_host else None

    def destination(self, url: str, *, callback: bool = False) -> Destination:
        """Where ``url`` may be called, resolved and checked. ``callback``: the Workflows callback URL
        (Google's callback host needs no allowlist entry). Raises ``EgressRefusedError``, or
        ``HttpCallError("connection")`` when the name does not resolve now (another try may)."""
        parts, host, port, literal = _check_url(url, self.settings, callback=callback)
        addresses = (literal,) if literal is not None else self._resolve(host, port)
        for address in addresses:
            refusal = self._refusal(host, address, port, resolved=literal is None)
            if refusal is not None:
                raise refusal
        path = parts.path or "/"
        return Destination(
            scheme=parts.scheme,
            host=host,
            port=port,
            explicit_port=parts.port is not None,
            path=f"{path}?{parts.query}" if parts.query else path,
            addresses=tuple(dict.fromkeys(str(a) for a in addresses)),
        )

    def _refusal(
        self, host: str, address: IPAddress, port: int, *, resolved: bool
    ) -> EgressRefusedError | None:
        if resolved and address in self._metadata_addresses(port):
            message = (
                f"host {host!r} resolves to {address}, the metadata server (GCE_METADATA_HOST),"
                " which is never called"
            )
            return EgressRefusedError(host, message, "denied", address)
        return _address_refusal(host, address, port, self.settings.allowed_hosts, resolved=resolved)

    def _metadata_addresses(self, port: int) -> tuple[IPAddress, ...]:
        """The addresses of ``GCE_METADATA_HOST`` when ``port`` is its port (empty when it is unset)."""
        if self._metadata_host is None or self._metadata_port not in (None, port):
            return ()
        if self._metadata_literal is not None:
            return (self._metadata_literal,)
        try:
            return self._resolve(self._metadata_host, port)
        except HttpCallError:
            return ()

    def _resolve(self, host: str, port: int) -> tuple[IPAddress, ...]:
        now = self._clock()
        with self._lock:
            cached = self._cache.get(host)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            answers = self._resolver(host, port, 0, socket.SOCK_STREAM)
        except (OSError, UnicodeError) as error:
            raise HttpCallError("connection", f"cannot resolve host {host!r}: {error}") from None
        found = tuple(
            dict.fromkeys(
                a
                for a in (parse_address(str(answer[4][0])) for answer in answers if answer[4])
                if a is not None
            )
        )
        if not found:
            raise HttpCallError("connection", f"cannot resolve host {host!r}: no address")
        with self._lock:
            if len(self._cache) >= _RESOLVE_CACHE_ENTRIES:
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            if len(self._cache) < _RESOLVE_CACHE_ENTRIES:
                self._cache[host] = (now + self._cache_seconds, found)
        return found
