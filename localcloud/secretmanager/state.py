"""Secret Manager's state: secrets, their versions and IAM policies, in memory, as protobuf messages.

Behaviour (https://cloud.google.com/secret-manager/docs/reference/rest/v1/projects.secrets.versions/access,
https://cloud.google.com/secret-manager/docs/etags):

- ``versions/latest`` is an alias to the *most recently created* version, whatever its state, so
  accessing ``latest`` when the newest version is disabled is FAILED_PRECONDITION (it does not fall
  back to an older enabled version).
- Accessing a DISABLED or DESTROYED version is FAILED_PRECONDITION; destroying wipes the payload.
- A supplied etag that does not match the stored one is FAILED_PRECONDITION; every modification (even
  a no-op enable) gives the resource a new etag; a version change does not change the secret's etag.
- Payloads are at most 64 KiB; the server computes the CRC32C of every payload and rejects a supplied
  ``data_crc32c`` that does not match with INVALID_ARGUMENT.
- A secret created with ``ttl`` gets ``expire_time`` and disappears (NOT_FOUND) once it has passed.

Regional names (``projects/P/locations/L/secrets/S``) work the same as global ones. A project may be named
by its id or its number (``localcloud._project``: the server reads a number as the id before the store
sees the request). Google's Secret Manager answers with the project's number whichever the request used
(the Terraform provider documents it, https://github.com/hashicorp/terraform-provider-google/pull/11343,
and so does a samples maintainer, https://github.com/GoogleCloudPlatform/python-docs-samples/issues/7212).
The emulator answers a request that named the project by number with the number; one that named it by
id keeps the id, as this emulator always has (the clients and tests built on it compare names with ids).
"""

from __future__ import annotations

import re
import secrets as _random
from dataclasses import dataclass, field
from typing import Any

import google_crc32c
from google.api_core import exceptions as gexc
from google.cloud.secretmanager_v1.types import resources
from google.iam.v1 import policy_pb2

from localcloud.clock import Clock, timestamp

MAX_PAYLOAD_BYTES = 64 * 1024
SECRET_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_PARENT = re.compile(r"^projects/[^/]+(/locations/[^/]+)?$")
_SECRET = re.compile(r"^(?P<parent>projects/[^/]+(?:/locations/[^/]+)?)/secrets/(?P<id>[^/]+)$")
_VERSION = re.compile(
    r"^(?P<secret>projects/[^/]+(?:/locations/[^/]+)?/secrets/[^/]+)/versions/(?P<v>[^/]+)$"
)

SecretPb: Any = resources.Secret.pb()
VersionPb: Any = resources.SecretVersion.pb()
State = resources.SecretVersion.State


def _etag() -> str:
    return f'"{_random.token_hex(8)}"'


def crc32c_of(data: bytes) -> int:
    return int(google_crc32c.value(data))


@dataclass
class StoredVersion:
    message: Any  # SecretVersion pb, without payload
    data: bytes | None
    crc32c: int | None


@dataclass
class StoredSecret:
    message: Any  # Secret pb
    versions: list[StoredVersion] = field(default_factory=list)
    policy: policy_pb2.Policy = field(default_factory=policy_pb2.Policy)


def check_parent(parent: str) -> str:
    if not _PARENT.match(parent or ""):
        raise gexc.InvalidArgument(f"Invalid resource field value in the request: parent {parent!r}")
    return parent


def split_secret_name(name: str) -> tuple[str, str]:
    match = _SECRET.match(name or "")
    if not match:
        raise gexc.InvalidArgument(f"Invalid resource field value in the request: name {name!r}")
    return match["parent"], match["id"]


def split_version_name(name: str) -> tuple[str, str]:
    match = _VERSION.match(name or "")
    if not match:
        raise gexc.InvalidArgument(f"Invalid resource field value in the request: name {name!r}")
    return match["secret"], match["v"]


class SecretStore:
    """All secrets of the emulator. Single-threaded: use from the event loop."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._secrets: dict[str, StoredSecret] = {}

    # secrets

    def create_secret(self, parent: str, secret_id: str, secret: Any) -> Any:
        check_parent(parent)
        if not SECRET_ID.match(secret_id or ""):
            raise gexc.InvalidArgument(
                "secret_id: must be 1 to 255 characters of letters, digits, underscores and hyphens"
            )
        name = f"{parent}/secrets/{secret_id}"
        if name in self._secrets:
            raise gexc.AlreadyExists(f"Secret [{name}] already exists.")
        message = SecretPb()
        message.CopyFrom(secret)
        message.name = name
        message.create_time.CopyFrom(timestamp(self._clock.now()))
        message.etag = _etag()
        if message.HasField("ttl"):
            expire = self._clock.now() + message.ttl.ToTimedelta().total_seconds()
            message.ClearField("ttl")
            message.expire_time.CopyFrom(timestamp(expire))
        if not message.HasField("replication"):
            message.replication.automatic.SetInParent()
        self._secrets[name] = StoredSecret(message=message)
        return _copy(message)

    def _expire(self) -> None:
        """Secrets whose ``expire_time`` has passed are deleted, as Google deletes them."""
        now = self._clock.now()
        for name, stored in list(self._secrets.items()):
            message = stored.message
            if message.HasField("expire_time") and message.expire_time.ToNanoseconds() / 1e9 <= now:
                del self._secrets[name]

    def _secret(self, name: str) -> StoredSecret:
        split_secret_name(name)
        self._expire()
        stored = self._secrets.get(name)
        if stored is None:
            raise gexc.NotFound(f"Secret [{name}] not found.")
        return stored

    def get_secret(self, name: str) -> Any:
        return _copy(self._secret(name).message)

    def list_secrets(self, parent: str, filter_text: str = "") -> list[Any]:
        check_parent(parent)
        self._expire()
        prefix = parent + "/secrets/"
        found = [
            _copy(s.message)
            for n, s in sorted(self._secrets.items())
            if n.startswith(prefix) and "/" not in n[len(prefix) :]
        ]
        return [m for m in found if _matches_secret(m, filter_text)]

    def update_secret(self, secret: Any, paths: list[str]) -> Any:
        stored = self._secret(secret.name)
        current = stored.message
        _check_etag(secret.etag, current.etag, secret.name)
        if not paths:
            raise gexc.InvalidArgument("update_mask: must name at least one field")
        mutable = {
            "labels",
            "annotations",
            "topics",
            "expire_time",
            "ttl",
            "rotation",
            "version_aliases",
            "version_destroy_ttl",
            "tags",
        }
        for path in paths:
            if path not in mutable:
                raise gexc.InvalidArgument(f"update_mask: field {path!r} cannot be updated")
        for path in paths:
            if path == "ttl":
                current.ClearField("expire_time")
                expire = self._clock.now() + secret.ttl.ToTimedelta().total_seconds()
                current.expire_time.CopyFrom(timestamp(expire))
                continue
            current.ClearField(path)
            value = getattr(secret, path)
            if path in ("labels", "annotations", "version_aliases", "tags"):
                getattr(current, path).update(value)
            elif path == "topics":
                current.topics.extend(value)
            elif secret.HasField(path):
                getattr(current, path).CopyFrom(value)
        current.etag = _etag()
        return _copy(current)

    def delete_secret(self, name: str, etag: str = "") -> None:
        stored = self._secret(name)
        _check_etag(etag, stored.message.etag, name)
        del self._secrets[name]

    # versions

    def add_version(self, parent: str, data: bytes, crc32c: int | None) -> Any:
        stored = self._secret(parent)
        if len(data) > MAX_PAYLOAD_BYTES:
            raise gexc.InvalidArgument(
                f"payload.data: secret data must be at most {MAX_PAYLOAD_BYTES} bytes, got {len(data)}"
            )
        actual = crc32c_of(data)
        if crc32c is not None and crc32c != actual:
            raise gexc.InvalidArgument("payload.data_crc32c: checksum does not match the payload data")
        number = len(stored.versions) + 1
        message = VersionPb()
        message.name = f"{parent}/versions/{number}"
        message.create_time.CopyFrom(timestamp(self._clock.now()))
        message.state = State.ENABLED
        message.etag = _etag()
        message.client_specified_payload_checksum = crc32c is not None
        message.replication_status.automatic.SetInParent()
        stored.versions.append(StoredVersion(message=message, data=data, crc32c=actual))
        return _copy(message)

    def _version(self, name: str) -> StoredVersion:
        secret_name, version = split_version_name(name)
        stored = self._secret(secret_name)
        if version == "latest":
            if not stored.versions:
                raise gexc.NotFound(f"Secret [{secret_name}] not found or has no versions.")
            return stored.versions[-1]
        alias = stored.message.version_aliases.get(version)
        number = alias if alias is not None else (int(version) if version.isdigit() else 0)
        if not version.isdigit() and alias is None:
            raise gexc.InvalidArgument(
                f"name: version {version!r} is neither a number, an alias nor 'latest'"
            )
        if not 1 <= number <= len(stored.versions):
            raise gexc.NotFound(f"Secret Version [{secret_name}/versions/{version}] not found.")
        return stored.versions[number - 1]

    def get_version(self, name: str) -> Any:
        return _copy(self._version(name).message)

    def list_versions(self, parent: str, filter_text: str = "") -> list[Any]:
        stored = self._secret(parent)
        states = _state_filter(filter_text)
        return [
            _copy(v.message) for v in reversed(stored.versions) if states is None or v.message.state in states
        ]

    def access_version(self, name: str) -> tuple[str, bytes, int]:
        version = self._version(name)
        message = version.message
        state = message.state
        if state != State.ENABLED or version.data is None or version.crc32c is None:
            raise gexc.FailedPrecondition(f"Secret Version [{message.name}] is in {State(state).name} state.")
        return message.name, version.data, version.crc32c

    def set_version_state(self, name: str, state: int, etag: str = "") -> Any:
        version = self._version(name)
        message = version.message
        _check_etag(etag, message.etag, message.name)
        if message.state == State.DESTROYED and state != State.DESTROYED:
            raise gexc.FailedPrecondition(f"Secret Version [{message.name}] is in DESTROYED state.")
        message.state = state
        if state == State.DESTROYED:
            version.data = None
            version.crc32c = None
            message.destroy_time.CopyFrom(timestamp(self._clock.now()))
        message.etag = _etag()
        return _copy(message)

    # IAM

    def get_policy(self, resource: str) -> policy_pb2.Policy:
        return _copy(self._secret(resource).policy)

    def set_policy(self, resource: str, policy: policy_pb2.Policy) -> policy_pb2.Policy:
        stored = self._secret(resource)
        if policy.etag and policy.etag != stored.policy.etag:
            raise gexc.Aborted("etag: the policy was changed concurrently")
        stored.policy = policy_pb2.Policy()
        stored.policy.CopyFrom(policy)
        stored.policy.etag = _random.token_bytes(8)
        if not stored.policy.version:
            stored.policy.version = 1
        return _copy(stored.policy)

    def test_permissions(self, resource: str, permissions: list[str]) -> list[str]:
        self._secret(resource)
        return [p for p in permissions if p.startswith("secretmanager.")]


def _copy(message: Any) -> Any:
    clone = type(message)()
    clone.CopyFrom(message)
    return clone


def _check_etag(supplied: str, current: str, name: str) -> None:
    if supplied and supplied != current:
        raise gexc.FailedPrecondition(f"etag: the supplied etag does not match the current etag of [{name}]")


_STATE_TERM = re.compile(r"^\s*state\s*[:=]\s*(\w+)\s*$", re.IGNORECASE)


def _state_filter(filter_text: str) -> set[int] | None:
    """``state:ENABLED``, ``state=DISABLED`` and ``OR`` of those (the subset of
    https://cloud.google.com/secret-manager/docs/filtering that version lists use)."""
    if not filter_text.strip():
        return None
    states: set[int] = set()
    for term in re.split(r"\s+OR\s+", filter_text.strip()):
        match = _STATE_TERM.match(term)
        if not match or match[1].upper() not in State.__members__:
            raise gexc.InvalidArgument(f"filter: unsupported expression {filter_text!r}")
        states.add(int(getattr(State, match[1].upper())))
    return states


_LABEL_TERM = re.compile(r"^\s*(labels\.(?P<key>[\w-]+)|name)\s*(?P<op>[:=])\s*(?P<value>\S+)\s*$")


def _matches_secret(message: Any, filter_text: str) -> bool:
    """AND of ``name:TEXT`` (substring), ``labels.KEY=VALUE`` and ``labels.KEY:*`` terms."""
    if not filter_text.strip():
        return True
    for term in re.split(r"\s+AND\s+|\s+", filter_text.strip()):
        match = _LABEL_TERM.match(term)
        if not match:
            raise gexc.InvalidArgument(f"filter: unsupported expression {filter_text!r}")
        value = match["value"].strip('"')
        if match["key"]:
            labels = message.labels
            if value == "*":
                if match["key"] not in labels:
                    return False
            elif labels.get(match["key"]) != value:
                return False
        elif value not in message.name:
            return False
    return True
