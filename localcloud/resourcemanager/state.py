"""Resource Manager's tags: tag keys, tag values and tag bindings, in memory, as protobuf messages.

Behaviour (the reference of ``google.cloud.resourcemanager.v3``,
https://cloud.google.com/resource-manager/reference/rest/v3/tagKeys,
https://cloud.google.com/resource-manager/reference/rest/v3/tagValues,
https://cloud.google.com/resource-manager/reference/rest/v3/tagBindings, and the gcloud reference,
https://cloud.google.com/sdk/gcloud/reference/resource-manager/tags/values/create):

- Names are generated: ``tagKeys/<number>``, ``tagValues/<number>``. A tag key's parent is
  ``organizations/<id>`` or ``projects/<id or number>``; a tag value's parent is an existing ``tagKeys/<n>``
  (else NOT_FOUND).
- ``short_name``: 1-63 characters, beginning and ending with a letter or digit, with dashes, underscores,
  dots and letters or digits between; unique among the keys of one parent (a project named by id or by
  number is one parent) and among the values of one key, else ALREADY_EXISTS. It cannot be changed.
- ``namespaced_name``: ``<parent id>/<key short name>`` (a project's id, also when the parent named it by
  number) and ``<key namespaced name>/<value short name>``; ``GetNamespaced*`` look them up.
- ``description`` at most 256 characters. Every change gives a new ``etag``; an update or delete whose
  ``etag`` is set and differs from the current one is ABORTED (``UpdateTagKeyRequest``: "Otherwise,
  ABORTED will be returned"). An update mask may name only ``description`` and ``etag``.
- Get and GetNamespaced of a key or value that does not exist are PERMISSION_DENIED, as Google documents
  ("will return PERMISSION_DENIED if the key does not exist or the user does not have permission to view
  it"); update and delete of one are NOT_FOUND.
- A key with values cannot be deleted ("The TagKey cannot be deleted if it has any child TagValues") nor a
  value with bindings ("The TagValue cannot have any bindings when it is deleted"): FAILED_PRECONDITION.
- ``validate_only`` checks the request and changes nothing.

A binding ties a value to a resource named by its full resource name
(``//secretmanager.googleapis.com/projects/p/secrets/s``); its name is
``tagBindings/<the parent, percent-encoded>/tagValues/<n>``. The emulator does not check that the resource
exists: it knows no other service's resources (``localcloud.resourcemanager.api`` drops the bindings of
Secret Manager resources that are gone, as Google removes the bindings of a deleted resource).
"""

from __future__ import annotations

import re
import secrets as _random
import urllib.parse
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud.resourcemanager_v3.types import tag_bindings, tag_keys, tag_values

from localcloud._project import ProjectNumbers
from localcloud.clock import Clock, timestamp

TagKeyPb: Any = tag_keys.TagKey.pb()
TagValuePb: Any = tag_values.TagValue.pb()
TagBindingPb: Any = tag_bindings.TagBinding.pb()

SHORT_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
MAX_DESCRIPTION = 256
_KEY_PARENT = re.compile(r"^(?:organizations/(?P<org>[0-9]+)|projects/(?P<project>[^/]+))$")
_KEY_NAME = re.compile(r"^tagKeys/[0-9]+$")
_VALUE_NAME = re.compile(r"^tagValues/[0-9]+$")
_BINDING_NAME = re.compile(r"^tagBindings/(?P<parent>.+)/tagValues/(?P<value>[0-9]+)$")
UPDATABLE = frozenset({"description", "etag"})
# Generated ids are 15 digits, like Google's (tagKeys/281478395625645).
_FIRST_ID = 281_470_000_000_001


def _etag() -> str:
    return f"W/{_random.token_hex(8)}"


def _copy(message: Any) -> Any:
    clone = type(message)()
    clone.CopyFrom(message)
    return clone


def check_short_name(short_name: str) -> None:
    if not SHORT_NAME.match(short_name or ""):
        raise gexc.InvalidArgument(
            f"short_name {short_name!r}: must be 1-63 characters, beginning and ending with an alphanumeric "
            "character ([a-z0-9A-Z]) with dashes (-), underscores (_), dots (.), and alphanumerics between"
        )


def check_description(description: str) -> None:
    if len(description) > MAX_DESCRIPTION:
        raise gexc.InvalidArgument(f"description: must not exceed {MAX_DESCRIPTION} characters")


def check_etag(supplied: str, current: str, name: str) -> None:
    if supplied and supplied != current:
        raise gexc.Aborted(f"etag: the supplied etag does not match the current etag of [{name}]")


def binding_name(parent: str, value: str) -> str:
    return f"tagBindings/{urllib.parse.quote(parent, safe='')}/{value}"


@dataclass(frozen=True)
class Mutation:
    """What a mutation did: its kind (``tkc``: tag key create, ...) and the resource it answers with."""

    kind: str
    resource: Any


class TagStore:
    """Every tag key, value and binding of the emulator. Single-threaded: use from the event loop."""

    def __init__(self, clock: Clock, numbers: ProjectNumbers | None = None) -> None:
        self._clock = clock
        self._numbers = numbers or ProjectNumbers()
        self._keys: dict[str, Any] = {}
        self._values: dict[str, Any] = {}
        self._bindings: dict[str, Any] = {}
        self._next_id = _FIRST_ID

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _stamp(self, message: Any, *, created: bool) -> None:
        now = timestamp(self._clock.now())
        if created:
            message.create_time.CopyFrom(now)
        message.update_time.CopyFrom(now)
        message.etag = _etag()

    def _namespace(self, parent: str) -> str:
        match = _KEY_PARENT.match(parent or "")
        if match is None:
            raise gexc.InvalidArgument(
                f"parent {parent!r}: must be organizations/{{org_id}}, projects/{{project_id}} or "
                "projects/{project_number}"
            )
        return match["org"] or self._numbers.project_id(match["project"])

    # tag keys

    def create_key(self, tag_key: Any, validate_only: bool = False) -> Mutation:
        namespace = self._namespace(tag_key.parent)
        check_short_name(tag_key.short_name)
        check_description(tag_key.description)
        namespaced = f"{namespace}/{tag_key.short_name}"
        if self._key_by_namespaced(namespaced) is not None:
            raise gexc.AlreadyExists(
                f"A TagKey with short_name {tag_key.short_name!r} exists under {namespace}"
            )
        message = TagKeyPb()
        message.CopyFrom(tag_key)
        message.namespaced_name = namespaced
        self._stamp(message, created=True)
        if not validate_only:
            message.name = f"tagKeys/{self._new_id()}"
            self._keys[message.name] = message
        return Mutation("tkc", _copy(message))

    def _key_by_namespaced(self, namespaced: str) -> Any | None:
        return next((k for k in self._keys.values() if k.namespaced_name == namespaced), None)

    def _key(self, name: str, missing: type[gexc.GoogleAPICallError] = gexc.NotFound) -> Any:
        if not _KEY_NAME.match(name or ""):
            raise gexc.InvalidArgument(f"name {name!r}: must be tagKeys/{{tag_key_id}}")
        found = self._keys.get(name)
        if found is None:
            raise missing(f"TagKey [{name}] not found or permission denied.")
        return found

    def get_key(self, name: str) -> Any:
        return _copy(self._key(name, gexc.PermissionDenied))

    def get_namespaced_key(self, namespaced: str) -> Any:
        found = self._key_by_namespaced(self._read_namespaced(namespaced, parts=2))
        if found is None:
            raise gexc.PermissionDenied(f"TagKey [{namespaced}] not found or permission denied.")
        return _copy(found)

    def _read_namespaced(self, namespaced: str, parts: int) -> str:
        """``namespaced`` with a project number read as the project's id."""
        pieces = (namespaced or "").split("/")
        if len(pieces) != parts or not all(pieces):
            shape = "{parent_id}/{tag_key_short_name}" + ("/{short_name}" if parts == 3 else "")
            raise gexc.InvalidArgument(f"name {namespaced!r}: must be {shape}")
        if pieces[0].isdigit():
            pieces[0] = self._numbers.project_id(pieces[0])
        return "/".join(pieces)

    def list_keys(self, parent: str) -> list[Any]:
        namespace = self._namespace(parent)
        return [_copy(k) for k in self._keys.values() if k.namespaced_name.split("/")[0] == namespace]

    def update_key(self, tag_key: Any, paths: list[str], validate_only: bool = False) -> Mutation:
        return Mutation("tku", self._update(self._key(tag_key.name), tag_key, paths, validate_only))

    def delete_key(self, name: str, etag: str = "", validate_only: bool = False) -> Mutation:
        stored = self._key(name)
        check_etag(etag, stored.etag, name)
        if any(v.parent == name for v in self._values.values()):
            raise gexc.FailedPrecondition(f"TagKey [{name}] has child TagValues: delete them first")
        if not validate_only:
            del self._keys[name]
        return Mutation("tkd", _copy(stored))

    def _update(self, stored: Any, given: Any, paths: list[str], validate_only: bool) -> Any:
        unknown = sorted(set(paths) - UPDATABLE)
        if unknown:
            raise gexc.InvalidArgument(
                f"update_mask: only description and etag can be updated, not {unknown}"
            )
        check_etag(given.etag, stored.etag, stored.name)
        check_description(given.description)
        updated = _copy(stored)
        if not paths or "description" in paths:
            updated.description = given.description
        self._stamp(updated, created=False)
        if not validate_only:
            stored.CopyFrom(updated)
        return updated

    # tag values

    def create_value(self, tag_value: Any, validate_only: bool = False) -> Mutation:
        key = self._key(tag_value.parent)
        check_short_name(tag_value.short_name)
        check_description(tag_value.description)
        namespaced = f"{key.namespaced_name}/{tag_value.short_name}"
        if self._value_by_namespaced(namespaced) is not None:
            raise gexc.AlreadyExists(
                f"A TagValue with short_name {tag_value.short_name!r} exists under {tag_value.parent}"
            )
        message = TagValuePb()
        message.CopyFrom(tag_value)
        message.namespaced_name = namespaced
        self._stamp(message, created=True)
        if not validate_only:
            message.name = f"tagValues/{self._new_id()}"
            self._values[message.name] = message
        return Mutation("tvc", _copy(message))

    def _value_by_namespaced(self, namespaced: str) -> Any | None:
        return next((v for v in self._values.values() if v.namespaced_name == namespaced), None)

    def _value(self, name: str, missing: type[gexc.GoogleAPICallError] = gexc.NotFound) -> Any:
        if not _VALUE_NAME.match(name or ""):
            raise gexc.InvalidArgument(f"name {name!r}: must be tagValues/{{tag_value_id}}")
        found = self._values.get(name)
        if found is None:
            raise missing(f"TagValue [{name}] not found or permission denied.")
        return found

    def get_value(self, name: str) -> Any:
        return _copy(self._value(name, gexc.PermissionDenied))

    def get_namespaced_value(self, namespaced: str) -> Any:
        found = self._value_by_namespaced(self._read_namespaced(namespaced, parts=3))
        if found is None:
            raise gexc.PermissionDenied(f"TagValue [{namespaced}] not found or permission denied.")
        return _copy(found)

    def list_values(self, parent: str) -> list[Any]:
        self._key(parent)
        return [_copy(v) for v in self._values.values() if v.parent == parent]

    def update_value(self, tag_value: Any, paths: list[str], validate_only: bool = False) -> Mutation:
        return Mutation("tvu", self._update(self._value(tag_value.name), tag_value, paths, validate_only))

    def delete_value(self, name: str, etag: str = "", validate_only: bool = False) -> Mutation:
        stored = self._value(name)
        check_etag(etag, stored.etag, name)
        if self.bindings_of_value(name):
            raise gexc.FailedPrecondition(f"TagValue [{name}] has TagBindings: delete them first")
        if not validate_only:
            del self._values[name]
        return Mutation("tvd", _copy(stored))

    # tag bindings

    def create_binding(self, binding: Any, validate_only: bool = False) -> Mutation:
        if not binding.parent.startswith("//"):
            raise gexc.InvalidArgument(
                f"parent {binding.parent!r}: must be a full resource name (//SERVICE.googleapis.com/...)"
            )
        if bool(binding.tag_value) == bool(binding.tag_value_namespaced_name):
            raise gexc.InvalidArgument("one of tag_value and tag_value_namespaced_name must be set, not both")
        if binding.tag_value:
            value = self._value(binding.tag_value)
        else:
            value = self._value_by_namespaced(self._read_namespaced(binding.tag_value_namespaced_name, 3))
            if value is None:
                raise gexc.NotFound(f"TagValue [{binding.tag_value_namespaced_name}] not found.")
        message = TagBindingPb(
            name=binding_name(binding.parent, value.name),
            parent=binding.parent,
            tag_value=value.name,
            tag_value_namespaced_name=value.namespaced_name,
        )
        if message.name in self._bindings:
            raise gexc.AlreadyExists(f"TagBinding [{message.name}] already exists.")
        if not validate_only:
            self._bindings[message.name] = message
        return Mutation("rctb", _copy(message))

    def delete_binding(self, name: str) -> Mutation:
        match = _BINDING_NAME.match(name or "")
        if match is None:
            raise gexc.InvalidArgument(f"name {name!r}: must be tagBindings/{{parent}}/tagValues/{{id}}")
        # The parent arrives percent-encoded over gRPC and, once the REST path is decoded, in clear.
        canonical = binding_name(urllib.parse.unquote(match["parent"]), f"tagValues/{match['value']}")
        if self._bindings.pop(canonical, None) is None:
            raise gexc.NotFound(f"TagBinding [{name}] not found.")
        return Mutation("rdtb", None)

    def list_bindings(self, parent: str) -> list[Any]:
        if not parent.startswith("//"):
            raise gexc.InvalidArgument(f"parent {parent!r}: must be a full resource name")
        return [_copy(b) for b in self._bindings.values() if b.parent == parent]

    def bindings_of_value(self, value: str) -> list[Any]:
        return [_copy(b) for b in self._bindings.values() if b.tag_value == value]

    def drop_binding(self, name: str) -> None:
        """Forget a binding whose resource is gone (no error when there is none)."""
        self._bindings.pop(name, None)
