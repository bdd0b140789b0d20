from __future__ import annotations

import pytest
from saga_orchestrator.egress import host_error
from saga_orchestrator.settings import Settings

SETTINGS = Settings.from_env(
    {
        "SAGA_ALLOWED_HOSTS": "127.0.0.1,localhost,*.example.com,api.partner.io:8443",
        "GCE_METADATA_HOST": "127.0.0.1:8089",
    }
)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://a.example.com/x", True),
        ("https://a.b.example.com/x", True),
        ("https://example.com/x", False),
        ("https://badexample.com/x", False),
        ("https://api.partner.io:8443/", True),
        ("https://api.partner.io:9443/", False),
        ("http://LOCALHOST:9000/", True),
        ("http://127.0.0.1:9000/", True),
        ("http://127.0.0.1:8089/", False),
        ("http://[fe80::1]/", False),
        ("http://metadata/", False),
    ],
)
def test_only_hosts_on_the_allowlist_and_off_the_metadata_server_are_called(url, allowed):
    assert (host_error(url, SETTINGS) is None) is allowed


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://a.example.com/x", "scheme must be http or https, got 'ftp'"),
        ("https:///x", "has no host"),
        ("https://user:pw@a.example.com/x", "must not carry credentials"),
        ("http://a.example.com:99999/", "is not a valid URL (Port out of range 0-65535)"),
        (
            "http://169.254.10.20/",
            "host '169.254.10.20' is the metadata server or link-local and is never called",
        ),
        (
            "http://metadata.google.internal./computeMetadata/v1/",
            "host 'metadata.google.internal' is the metadata server or link-local and is never called",
        ),
        (
            "https://api.partner.io:9443/",
            "host 'api.partner.io:9443' is not on the allowlist (SAGA_ALLOWED_HOSTS)",
        ),
    ],
)
def test_a_refused_url_says_why(url, problem):
    assert host_error(url, SETTINGS) == problem


def test_the_metadata_server_is_refused_even_when_the_allowlist_names_it():
    settings = Settings.from_env({"SAGA_ALLOWED_HOSTS": "metadata.google.internal,169.254.169.254"})
    assert host_error("http://metadata.google.internal/", settings) is not None
    assert host_error("http://169.254.169.254/", settings) is not None


# Every spelling of an address is judged by the address it spells; none of these needs DNS.
SPELLINGS = Settings.from_env(
    {
        "SAGA_ALLOWED_HOSTS": "127.0.0.1:9000,localhost:9000,*.example.com,[::1]:9000,fc00::5,"
        "[::ffff:169.254.169.254],fe80::1,[fd20:ce::254]",
        "GCE_METADATA_HOST": "127.0.0.1:8089",
    }
)
DENIED = "is the metadata server or link-local"
UNLISTED = "is not on the allowlist (SAGA_ALLOWED_HOSTS)"
INTERNAL = "only an allowlist entry naming the host or the address admits it (SAGA_ALLOWED_HOSTS; a wildcard never does)"
NUMERIC_SPELLINGS = [
    ("0x7f.0.0.1", "127.0.0.1"),
    ("0x7f000001", "127.0.0.1"),
    ("2130706433", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"),
    ("017700000001", "127.0.0.1"),
    ("127.1", "127.0.0.1"),
    ("127.0.1", "127.0.0.1"),
    ("127.000.000.001", "127.0.0.1"),
    ("2852039166", "169.254.169.254"),
    ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
    ("0251.0376.0251.0376", "169.254.169.254"),
]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        # the metadata server, by address and by name, in any case, with a trailing dot
        (
            "http://169.254.169.254/computeMetadata/v1/",
            f"host '169.254.169.254' {DENIED} and is never called",
        ),
        ("http://169.254.169.254./", f"host '169.254.169.254' {DENIED} and is never called"),
        (
            "http://METADATA.google.internal./",
            f"host 'metadata.google.internal' {DENIED} and is never called",
        ),
        ("http://metadata:80/", f"host 'metadata' {DENIED} and is never called"),
        ("http://127.0.0.1:8089/computeMetadata/v1/", f"host '127.0.0.1' {DENIED} and is never called"),
        # other loopback ports than the listed one
        ("http://127.0.0.1:9001/", f"host '127.0.0.1:9001' {UNLISTED}"),
        ("http://localhost:22/", f"host 'localhost:22' {UNLISTED}"),
        ("http://[::1]:9001/", f"host '[::1]:9001' {UNLISTED}"),
        ("http://[::1]/", f"host '::1' {UNLISTED}"),
        # hex, decimal, octal and short forms of 127.0.0.1 and 169.254.169.254
        *[
            (
                f"http://{spelled}:9000/",
                f"host '{spelled}' is a non-standard spelling of the address {address} and is never called",
            )
            for spelled, address in NUMERIC_SPELLINGS
        ],
        # credentials in the URL, whatever the host
        ("http://user:pw@127.0.0.1:9000/", "must not carry credentials"),
        ("http://user@a.example.com/", "must not carry credentials"),
        ("http://:pw@a.example.com/", "must not carry credentials"),
        # IPv6 spellings of link-local and metadata addresses: refused even when listed
        *[
            (f"http://[{host}]/", f"host '{host}' {DENIED} ({address}) and is never called")
            for host, address in [
                ("::ffff:169.254.169.254", "169.254.169.254"),  # IPv4-mapped
                ("0:0:0:0:0:ffff:a9fe:a9fe", "169.254.169.254"),
                ("::169.254.169.254", "169.254.169.254"),  # IPv4-compatible
                ("2002:a9fe:a9fe::1", "169.254.169.254"),  # 6to4
                ("64:ff9b::a9fe:a9fe", "169.254.169.254"),  # NAT64
                ("fe80::a9fe:a9fe%25eth0", "fe80::a9fe:a9fe"),  # link-local with a zone id
            ]
        ],
        ("http://[fe80::1]/", f"host 'fe80::1' {DENIED} and is never called"),
        ("http://[febf::1]/", f"host 'febf::1' {DENIED} and is never called"),
        ("http://[fd20:ce::254]/", f"host 'fd20:ce::254' {DENIED} and is never called"),
        # IPv6 spellings of loopback and private addresses, and unique-local ones: refused unless listed
        ("http://[::ffff:127.0.0.1]:9000/", f"host '[::ffff:127.0.0.1]:9000' {UNLISTED}"),
        ("http://[::ffff:10.0.0.1]/", f"host '::ffff:10.0.0.1' {UNLISTED}"),
        ("http://[fc00::1]/", f"host 'fc00::1' {UNLISTED}"),
        ("http://[::1%25lo]:9000/", f"host '[::1%25lo]:9000' {UNLISTED}"),
    ],
)
def test_every_spelling_of_a_forbidden_address_is_refused_and_the_message_names_the_address(url, problem):
    assert host_error(url, SPELLINGS) == problem


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9000/", "http://localhost:9000/", "http://[::1]:9000/", "http://[fc00::5]/"],
)
def test_an_internal_address_the_allowlist_names_exactly_is_called(url):
    assert host_error(url, SPELLINGS) is None


WILDCARDS = Settings.from_env({"SAGA_ALLOWED_HOSTS": "*.0.0.1,*.254.169.254,*.64.0.1,*.0.2.1"})


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://10.0.0.1/", f"host '10.0.0.1' is a private address; {INTERNAL}"),
        ("http://127.0.0.1:9001/", f"host '127.0.0.1' is a loopback address; {INTERNAL}"),
        ("http://100.64.0.1/", f"host '100.64.0.1' is a shared (CGNAT) address; {INTERNAL}"),
        ("http://0.0.0.1/", f"host '0.0.0.1' is a reserved address; {INTERNAL}"),
        ("http://192.0.2.1/", f"host '192.0.2.1' is a reserved address; {INTERNAL}"),
        ("http://169.254.169.254/", f"host '169.254.169.254' {DENIED} and is never called"),
        ("http://100.0.0.1/", None),  # a public address: the wildcard admits it
    ],
)
def test_a_wildcard_never_admits_an_internal_address(url, problem):
    assert host_error(url, WILDCARDS) == problem
