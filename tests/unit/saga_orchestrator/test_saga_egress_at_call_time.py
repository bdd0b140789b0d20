"""Egress decided on the address a call connects to: names resolved by an injected resolver, every
address checked before any connection, and the connection made to the checked address.

Every connection this module's process attempts while a test runs is watched (``sys.addaudithook``,
event ``socket.connect``): one to anything but loopback is blocked before it leaves the machine and
fails the test, and a test of a refusal asserts that no connection was attempted at all."""

from __future__ import annotations

import ipaddress
import re
import socket
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from saga_orchestrator.egress import Egress, EgressRefusedError
from saga_orchestrator.httpclient import HttpClient
from saga_orchestrator.model import ActionSpec
from saga_orchestrator.participant import CallContext, prepare, send
from saga_orchestrator.ports import HttpCallError
from saga_orchestrator.settings import Settings

from tests.support.http import RecordingHttpServer
from tests.support.tls import self_signed_certificate

# --- connections, watched ------------------------------------------------------------------------------

_watch_lock = threading.Lock()
_watched: list[list[Any]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "socket.connect" or not _watched:
        return
    address = args[1]
    host = address[0] if isinstance(address, tuple) else None
    with _watch_lock:
        for record in _watched:
            record.append(address)
    if host is not None and not ipaddress.ip_address(str(host).partition("%")[0]).is_loopback:
        raise ConnectionAbortedError(f"the test tried to connect to {host}")


sys.addaudithook(_audit)


@pytest.fixture
def connections() -> Iterator[list[Any]]:
    """Every address the code under test tried to connect to, in order."""
    record: list[Any] = []
    with _watch_lock:
        _watched.append(record)
    try:
        yield record
    finally:
        with _watch_lock:
            _watched.remove(record)
    assert all(ipaddress.ip_address(str(a[0]).partition("%")[0]).is_loopback for a in record), record


# --- a resolver that answers from a table ---------------------------------------------------------------


class TableResolver:
    """``socket.getaddrinfo``'s shape; counts the lookups."""

    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self.table = dict(table)
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int, family: int = 0, type: int = 0) -> list[tuple[Any, ...]]:
        self.lookups.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in self.table[host]
        ]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


RESOLVER = TableResolver(
    {
        "metadata-alias.example.com": ["169.254.169.254"],
        "internal.example.com": ["10.0.0.1"],
        "mapped.example.com": ["::ffff:169.254.169.254"],
        "ula.example.com": ["fd00::7"],
        "cgnat.example.com": ["100.64.0.9"],
        "split.example.com": ["8.8.4.4", "10.0.0.1"],
        "public.example.com": ["8.8.8.8"],
        "loop.example.com": ["127.0.0.1"],
        "listed.internal": ["10.0.0.5"],
        "meta.local": ["127.0.0.1"],
    }
)
SETTINGS = Settings.from_env(
    {
        "SAGA_ALLOWED_HOSTS": "*.example.com,listed.internal,participant.test,localhost,other.test",
        "GCE_METADATA_HOST": "127.0.0.1:8089",
    }
)


def refusal(url: str, settings: Settings = SETTINGS, **options: Any) -> EgressRefusedError:
    with pytest.raises(EgressRefusedError) as refused:
        Egress(settings, resolver=RESOLVER).destination(url, **options)
    return refused.value


@pytest.mark.parametrize(
    ("url", "address", "reason"),
    [
        ("http://metadata-alias.example.com/computeMetadata/v1/", "169.254.169.254", "denied"),
        ("http://mapped.example.com/", "169.254.169.254", "denied"),
        ("https://internal.example.com/pay", "10.0.0.1", "internal"),
        ("http://ula.example.com/", "fd00::7", "internal"),
        ("http://cgnat.example.com/", "100.64.0.9", "internal"),
        ("http://loop.example.com:9000/", "127.0.0.1", "internal"),
        # One internal address among public ones refuses the name.
        ("http://split.example.com/", "10.0.0.1", "internal"),
    ],
)
def test_a_name_that_resolves_to_a_forbidden_address_is_refused_naming_the_address(
    url, address, reason, connections
):
    refused = refusal(url)
    assert refused.reason == reason
    assert refused.address == ipaddress.ip_address(address)
    assert f"resolves to {address}," in refused.message
    assert connections == []


def test_the_messages_say_what_the_address_is_and_what_would_admit_it():
    assert refusal("http://metadata-alias.example.com/").message == (
        "host 'metadata-alias.example.com' resolves to 169.254.169.254, the metadata server or link-local,"
        " which is never called"
    )
    assert refusal("https://internal.example.com/").message == (
        "host 'internal.example.com' resolves to 10.0.0.1, a private address; only an allowlist entry"
        " naming the host or the address admits it (SAGA_ALLOWED_HOSTS; a wildcard never does)"
    )


def test_an_internal_address_is_admitted_when_the_allowlist_names_the_host_or_the_address():
    egress = Egress(SETTINGS, resolver=RESOLVER)
    assert egress.destination("http://listed.internal/x").addresses == ("10.0.0.5",)
    by_address = Settings.from_env({"SAGA_ALLOWED_HOSTS": "*.example.com,10.0.0.1:443"})
    assert Egress(by_address, resolver=RESOLVER).destination("https://internal.example.com/").addresses == (
        "10.0.0.1",
    )
    # ... on the listed port only.
    assert refusal("http://internal.example.com/", by_address).reason == "internal"


def test_the_metadata_server_is_refused_even_when_its_name_or_address_is_listed():
    settings = Settings.from_env({"SAGA_ALLOWED_HOSTS": "metadata-alias.example.com,169.254.169.254"})
    assert refusal("http://metadata-alias.example.com/", settings).reason == "denied"


def test_a_name_that_resolves_to_the_local_metadata_server_is_refused(connections):
    settings = Settings.from_env({"SAGA_ALLOWED_HOSTS": "meta.local", "GCE_METADATA_HOST": "127.0.0.1:8089"})
    refused = refusal("http://meta.local:8089/computeMetadata/v1/", settings)
    assert refused.reason == "denied" and "127.0.0.1" in refused.message
    assert Egress(settings, resolver=RESOLVER).destination("http://meta.local:9000/").addresses == (
        "127.0.0.1",
    )
    assert connections == []


def test_a_public_address_is_called_and_an_ip_literal_is_not_resolved():
    resolver = TableResolver({"public.example.com": ["8.8.8.8", "8.8.8.8"]})
    egress = Egress(Settings.from_env({"SAGA_ALLOWED_HOSTS": "*.example.com,127.0.0.1"}), resolver=resolver)
    destination = egress.destination("https://public.example.com/a?b=1")
    assert (destination.addresses, destination.path, destination.host_header) == (
        ("8.8.8.8",),
        "/a?b=1",
        "public.example.com",
    )
    assert egress.destination("http://127.0.0.1:9000/").addresses == ("127.0.0.1",)
    assert resolver.lookups == ["public.example.com"]


def test_resolutions_are_reused_for_a_few_seconds_then_looked_up_again():
    resolver = TableResolver({"public.example.com": ["8.8.8.8"]})
    clock = Clock()
    egress = Egress(SETTINGS, resolver=resolver, clock=clock, cache_seconds=5)
    for _ in range(3):
        egress.destination("https://public.example.com/")
    assert resolver.lookups == ["public.example.com"]
    clock.now += 5
    resolver.table["public.example.com"] = ["10.0.0.1"]
    with pytest.raises(EgressRefusedError, match=re.escape("resolves to 10.0.0.1")):
        egress.destination("https://public.example.com/")
    assert resolver.lookups == ["public.example.com", "public.example.com"]


def test_a_name_that_does_not_resolve_is_a_connection_failure_another_try_may_fix():
    with pytest.raises(HttpCallError) as failed:
        Egress(SETTINGS, resolver=RESOLVER).destination("https://unknown.example.com/")
    assert not isinstance(failed.value, EgressRefusedError)
    assert failed.value.kind == "connection"
    assert failed.value.message.startswith("cannot resolve host 'unknown.example.com'")


def test_the_workflows_callback_host_needs_no_allowlist_entry_but_its_addresses_are_checked():
    resolver = TableResolver({"workflowexecutions.googleapis.com": ["142.250.0.1"]})
    egress = Egress(Settings.from_env({"SAGA_ALLOWED_HOSTS": "api.partner.io"}), resolver=resolver)
    url = "https://workflowexecutions.googleapis.com/v1/projects/p/locations/l/workflows/w/executions/e/callbacks/c"
    assert egress.destination(url, callback=True).addresses == ("142.250.0.1",)
    with pytest.raises(EgressRefusedError, match="not on the allowlist"):
        egress.destination(url)  # a participant URL gets no such exception
    with pytest.raises(EgressRefusedError, match="not on the allowlist"):
        egress.destination(url.replace("https", "http"), callback=True)
    resolver.table["workflowexecutions.googleapis.com"] = ["10.1.2.3"]
    egress = Egress(Settings.from_env({"SAGA_ALLOWED_HOSTS": "api.partner.io"}), resolver=resolver)
    with pytest.raises(EgressRefusedError, match=re.escape("resolves to 10.1.2.3, a private address")):
        egress.destination(url, callback=True)


# --- the HTTP client connects to the checked address ---------------------------------------------------


def pinned(settings: Settings, table: Mapping[str, Sequence[str]], **client: Any) -> HttpClient:
    return HttpClient(**client).guarded(Egress(settings, resolver=TableResolver(table)).destination)


def get(http: HttpClient, url: str) -> int:
    answer = http.request("GET", url, headers={}, body=None, connect_timeout=5, read_timeout=5, max_body=1000)
    return answer.status


def test_a_name_is_called_at_the_address_it_resolved_to_with_its_own_host_header(http_server, connections):
    http = pinned(
        Settings.from_env({"SAGA_ALLOWED_HOSTS": "participant.test"}), {"participant.test": ["127.0.0.1"]}
    )
    assert get(http, f"http://participant.test:{http_server.port}/book?x=1") == 200
    [seen] = http_server.requests_to("/book")
    assert seen.path == "/book?x=1"
    assert seen.headers["Host"] == f"participant.test:{http_server.port}"
    assert [address[0] for address in connections] == ["127.0.0.1"]


def test_the_next_checked_address_is_tried_when_one_refuses_the_connection(http_server, connections):
    if not _can_bind("127.0.0.2"):
        pytest.skip("127.0.0.2 is not a loopback address here")
    table = {"participant.test": ["127.0.0.2", "127.0.0.1"]}
    http = pinned(Settings.from_env({"SAGA_ALLOWED_HOSTS": "participant.test"}), table)
    # The server listens on 127.0.0.1 only: 127.0.0.2 refuses the connection, so 127.0.0.1 is tried.
    assert get(http, f"http://participant.test:{http_server.port}/two") == 200
    assert [address[0] for address in connections] == ["127.0.0.2", "127.0.0.1"]
    assert len(http_server.requests_to("/two")) == 1


def _can_bind(host: str) -> bool:
    try:
        with socket.socket() as sock:
            sock.bind((host, 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://internal.example.com/", "10.0.0.1"),
        ("http://metadata-alias.example.com/computeMetadata/v1/", "169.254.169.254"),
        ("http://[::ffff:169.254.169.254]/", "169.254.169.254"),
    ],
)
def test_a_refused_call_fails_before_any_connection_is_attempted(url, address, connections):
    http = HttpClient().guarded(Egress(SETTINGS, resolver=RESOLVER).destination)
    with pytest.raises(EgressRefusedError) as refused:
        get(http, url)
    assert str(refused.value.address) == address
    assert connections == []


def test_a_participant_whose_name_resolves_internally_is_not_called_and_not_retried(connections):
    http = HttpClient().guarded(Egress(SETTINGS, resolver=RESOLVER).destination)
    spec = ActionSpec(url="https://internal.example.com/charge", payload={}, auth="none", timeout_seconds=5)
    prepared = prepare(spec, CallContext("s", "pay", "execute"), outputs={}, secret_values={}, tokens=None)
    outcome = send(prepared, http)
    assert (outcome.kind, outcome.status_code, outcome.retryable) == ("business", None, False)
    assert outcome.message.startswith("not called: host 'internal.example.com' resolves to 10.0.0.1")
    assert connections == []


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RecordingHttpServer, str]]:
    """HTTPS on 127.0.0.1 with a certificate for 127.0.0.1 and ``localhost`` only."""
    cert, key = self_signed_certificate(str(tmp_path_factory.mktemp("tls")))
    server = RecordingHttpServer(tls=(cert, key)).start()
    yield server, cert
    server.stop()


def test_tls_is_verified_against_the_name_not_the_address_connected_to(tls_server, connections):
    server, cert = tls_server
    table = {"localhost": ["127.0.0.1"], "other.test": ["127.0.0.1"]}
    http = pinned(SETTINGS, table, ca_bundle=cert)
    assert get(http, f"https://localhost:{server.port}/named") == 200
    assert server.requests_to("/named")[0].headers["Host"] == f"localhost:{server.port}"
    # Same address, but the certificate does not name other.test: the handshake fails.
    with pytest.raises(HttpCallError) as failed:
        get(http, f"https://other.test:{server.port}/named")
    assert failed.value.kind == "connection"
    assert "hostname 'other.test' doesn't match" in failed.value.message
    assert len(server.requests_to("/named")) == 1
    assert {address[0] for address in connections} == {"127.0.0.1"}
