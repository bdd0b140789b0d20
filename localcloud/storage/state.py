"""Cloud Storage's state: buckets and their objects, in memory, one live version per object name.

Behaviour (JSON API, https://cloud.google.com/storage/docs/json_api/v1/objects/insert and the pages of
``objects/get``, ``objects/patch``, ``objects/delete``, ``objects/list``, ``buckets/insert``):

- Every upload of an object gives it a new **generation** and metageneration 1; every metadata update
  (``objects.patch``) keeps the generation and adds 1 to the **metageneration**
  (https://cloud.google.com/storage/docs/metadata#generation-number). Generations are integers that only
  grow (Google uses microsecond timestamps; so does this emulator, bumped by one when two uploads share a
  microsecond), so a generation is never reused, even after a delete.
- Preconditions (https://cloud.google.com/storage/docs/request-preconditions):
  ``ifGenerationMatch`` — the live generation must equal the value; **0 means "there must be no live
  object"**, which makes an upload an atomic create-if-absent. ``ifGenerationNotMatch`` — the live
  generation must differ (0: there must be a live object); with no live object it fails.
  ``ifMetagenerationMatch`` / ``ifMetagenerationNotMatch`` — the same on the metageneration; with no live
  object they fail. A failed precondition is **412 Precondition Failed** (reason ``conditionNotMet``,
  https://cloud.google.com/storage/docs/json_api/v1/status-codes); on a read, a failed
  ``…NotMatch`` is **304 Not Modified**. Reading, updating or deleting an object that does not exist is
  404 before any precondition is looked at.
- A checked request is applied atomically: the state is used from one event loop and no handler awaits
  between its check and its change, so of two uploads with ``ifGenerationMatch=0`` exactly one succeeds.
- A supplied ``crc32c`` or ``md5Hash`` that does not match the data is 400, and the stored object always
  carries both, computed here (https://cloud.google.com/storage/docs/hashes-etags).
- ``objects.patch`` merges ``metadata`` key by key; a key set to null is removed
  (https://cloud.google.com/storage/docs/json_api/v1/objects/patch).
- Bucket names: 3–63 characters of lowercase letters, digits, ``-``, ``_`` and ``.``, starting and
  ending with a letter or digit (https://cloud.google.com/storage/docs/buckets#naming); creating a name
  that exists is 409; deleting a bucket that still has objects is 409.

``calls`` counts every request by its API method (``storage.objects.list``, …) so a test or the bench
can see how a client uses the service.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import google_crc32c
from google.api_core import exceptions as gexc

from localcloud._project import project_number
from localcloud.clock import Clock

BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
MAX_OBJECT_NAME_BYTES = 1024
DEFAULT_MAX_RESULTS = 1000
WRITABLE_FIELDS = frozenset(
    {"metadata", "contentType", "cacheControl", "contentDisposition", "contentEncoding", "contentLanguage"}
)


@dataclass(frozen=True)
class Preconditions:
    """The ``if…`` query parameters of a request; None when absent."""

    if_generation_match: int | None = None
    if_generation_not_match: int | None = None
    if_metageneration_match: int | None = None
    if_metageneration_not_match: int | None = None


def _stamp(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def crc32c_b64(data: bytes) -> str:
    """The object's CRC32C as the JSON API spells it: base64 of the big-endian 32-bit value."""
    return _b64(int(google_crc32c.value(data)).to_bytes(4, "big"))


def md5_b64(data: bytes) -> str:
    return _b64(hashlib.md5(data, usedforsecurity=False).digest())


@dataclass
class StoredObject:
    bucket: str
    name: str
    data: bytes
    generation: int
    content_type: str
    created: float
    metageneration: int = 1
    updated: float = 0.0
    metadata: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)  # other writable fields (cacheControl, …)

    def resource(self, base_url: str) -> dict[str, Any]:
        quoted = _quote(self.name)
        resource: dict[str, Any] = {
            "kind": "storage#object",
            "id": f"{self.bucket}/{self.name}/{self.generation}",
            "selfLink": f"{base_url}/storage/v1/b/{self.bucket}/o/{quoted}",
            "mediaLink": f"{base_url}/download/storage/v1/b/{self.bucket}/o/{quoted}"
            f"?generation={self.generation}&alt=media",
            "name": self.name,
            "bucket": self.bucket,
            "generation": str(self.generation),
            "metageneration": str(self.metageneration),
            "contentType": self.content_type,
            "storageClass": "STANDARD",
            "size": str(len(self.data)),
            "md5Hash": md5_b64(self.data),
            "crc32c": crc32c_b64(self.data),
            "etag": self.etag,
            "timeCreated": _stamp(self.created),
            "updated": _stamp(self.updated or self.created),
            "timeStorageClassUpdated": _stamp(self.created),
            **self.extra,
        }
        if self.metadata:
            resource["metadata"] = dict(self.metadata)
        return resource

    @property
    def etag(self) -> str:
        return _b64(f"{self.generation}/{self.metageneration}".encode())


@dataclass
class StoredBucket:
    name: str
    project: str
    location: str
    created: float
    objects: dict[str, StoredObject] = field(default_factory=dict)

    def resource(self, base_url: str) -> dict[str, Any]:
        return {
            "kind": "storage#bucket",
            "id": self.name,
            "selfLink": f"{base_url}/storage/v1/b/{self.name}",
            "name": self.name,
            "projectNumber": project_number(self.project),
            "metageneration": "1",
            "location": self.location,
            "locationType": "region" if "-" in self.location else "multi-region",
            "storageClass": "STANDARD",
            "etag": "CAE=",
            "timeCreated": _stamp(self.created),
            "updated": _stamp(self.created),
            "iamConfiguration": {"uniformBucketLevelAccess": {"enabled": True}},
        }


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def check_preconditions(current: StoredObject | None, pre: Preconditions, *, read: bool = False) -> None:
    """Raise ``PreconditionFailed`` (412), or ``NotModified`` (304) for a read's ``…NotMatch``."""
    generation = current.generation if current else None
    metageneration = current.metageneration if current else None
    failed = _match_fails(generation, pre.if_generation_match, zero_means_absent=True) or _match_fails(
        metageneration, pre.if_metageneration_match
    )
    if failed:
        raise gexc.PreconditionFailed("At least one of the pre-conditions you specified did not hold.")
    not_modified = _not_match_fails(generation, pre.if_generation_not_match) or _not_match_fails(
        metageneration, pre.if_metageneration_not_match
    )
    if not_modified and read and current is not None:
        raise gexc.NotModified("Not Modified")
    if not_modified:
        raise gexc.PreconditionFailed("At least one of the pre-conditions you specified did not hold.")


def _match_fails(live: int | None, wanted: int | None, *, zero_means_absent: bool = False) -> bool:
    if wanted is None:
        return False
    if wanted == 0 and zero_means_absent:
        return live is not None
    return live != wanted


def _not_match_fails(live: int | None, unwanted: int | None) -> bool:
    if unwanted is None:
        return False
    if live is None:
        return True
    return unwanted != 0 and live == unwanted


class StorageState:
    """Every bucket of the emulator. Single-threaded: use from the event loop."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._buckets: dict[str, StoredBucket] = {}
        self._last_generation = 0
        self.calls: Counter[str] = Counter()

    # buckets

    def insert_bucket(self, project: str, name: str, location: str) -> StoredBucket:
        if not project:
            raise gexc.BadRequest("Required parameter: project")
        if not BUCKET_NAME.match(name or "") or name.startswith("goog"):
            raise gexc.BadRequest(f"Invalid bucket name: '{name}'")
        if name in self._buckets:
            raise gexc.Conflict(
                "Your previous request to create the named bucket succeeded and you already own it."
            )
        bucket = StoredBucket(name, project, (location or "US").upper(), self._clock.now())
        self._buckets[name] = bucket
        return bucket

    def bucket(self, name: str) -> StoredBucket:
        bucket = self._buckets.get(name)
        if bucket is None:
            raise gexc.NotFound("The specified bucket does not exist.")
        return bucket

    def delete_bucket(self, name: str) -> None:
        if self.bucket(name).objects:
            raise gexc.Conflict("The bucket you tried to delete is not empty.")
        del self._buckets[name]

    # objects

    def insert_object(
        self,
        bucket_name: str,
        name: str,
        data: bytes,
        resource: dict[str, Any],
        pre: Preconditions,
    ) -> StoredObject:
        """Store a new generation of ``name``; ``resource`` is the object metadata the client sent."""
        bucket = self.bucket(bucket_name)
        _check_name(name)
        _check_hashes(data, resource)
        check_preconditions(bucket.objects.get(name), pre)
        now = self._clock.now()
        stored = StoredObject(
            bucket=bucket_name,
            name=name,
            data=data,
            generation=self._next_generation(now),
            content_type=str(resource.get("contentType") or "application/octet-stream"),
            created=now,
            metadata={str(k): str(v) for k, v in (resource.get("metadata") or {}).items() if v is not None},
            extra={
                k: str(v) for k, v in resource.items() if k in WRITABLE_FIELDS - {"metadata", "contentType"}
            },
        )
        bucket.objects[name] = stored
        return stored

    def get_object(
        self, bucket_name: str, name: str, pre: Preconditions, generation: int | None = None
    ) -> StoredObject:
        current = self._live(bucket_name, name, generation)
        check_preconditions(current, pre, read=True)
        return current

    def patch_object(
        self,
        bucket_name: str,
        name: str,
        changes: dict[str, Any],
        pre: Preconditions,
        generation: int | None = None,
    ) -> StoredObject:
        current = self._live(bucket_name, name, generation)
        check_preconditions(current, pre)
        unknown = sorted(set(changes) - WRITABLE_FIELDS - {"name", "bucket", "generation", "metageneration"})
        if unknown:
            raise gexc.BadRequest(f"Unknown or read-only field(s): {', '.join(unknown)}")
        for key, value in (changes.get("metadata") or {}).items():
            if value is None:
                current.metadata.pop(str(key), None)
            else:
                current.metadata[str(key)] = str(value)
        if "metadata" in changes and changes["metadata"] is None:
            current.metadata.clear()
        if changes.get("contentType"):
            current.content_type = str(changes["contentType"])
        for key in WRITABLE_FIELDS - {"metadata", "contentType"}:
            if key in changes:
                current.extra[key] = str(changes[key])
        current.metageneration += 1
        current.updated = self._clock.now()
        return current

    def delete_object(
        self, bucket_name: str, name: str, pre: Preconditions, generation: int | None = None
    ) -> None:
        current = self._live(bucket_name, name, generation)
        check_preconditions(current, pre)
        del self._buckets[bucket_name].objects[name]

    def list_objects(
        self,
        bucket_name: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        max_results: int = DEFAULT_MAX_RESULTS,
        page_token: str = "",
    ) -> tuple[list[StoredObject], list[str], str | None]:
        """Objects (by name) and, with a delimiter, the prefixes that stand for deeper names; a page at
        a time. The page token is the last name of the page, base64-encoded."""
        bucket = self.bucket(bucket_name)
        after = base64.urlsafe_b64decode(page_token.encode()).decode() if page_token else ""
        items: list[StoredObject] = []
        prefixes: set[str] = set()
        last = ""
        for name in sorted(bucket.objects):
            if not name.startswith(prefix) or (after and name <= after):
                continue
            if len(items) + len(prefixes) >= max(1, min(max_results, DEFAULT_MAX_RESULTS)):
                return items, sorted(prefixes), base64.urlsafe_b64encode(last.encode()).decode()
            rest = name[len(prefix) :]
            if delimiter and delimiter in rest:
                prefixes.add(prefix + rest.split(delimiter, 1)[0] + delimiter)
            else:
                items.append(bucket.objects[name])
            last = name
        return items, sorted(prefixes), None

    def _live(self, bucket_name: str, name: str, generation: int | None) -> StoredObject:
        current = self.bucket(bucket_name).objects.get(name)
        if current is None or (generation is not None and generation != current.generation):
            raise gexc.NotFound(f"No such object: {bucket_name}/{name}")
        return current

    def _next_generation(self, now: float) -> int:
        self._last_generation = max(int(now * 1_000_000), self._last_generation + 1)
        return self._last_generation


def _check_name(name: str) -> None:
    if not name:
        raise gexc.BadRequest("Required: object name")
    if len(name.encode("utf-8")) > MAX_OBJECT_NAME_BYTES or "\r" in name or "\n" in name:
        raise gexc.BadRequest(f"The object name is not valid: {name[:64]!r}")


def _check_hashes(data: bytes, resource: dict[str, Any]) -> None:
    supplied_crc = resource.get("crc32c")
    if supplied_crc and supplied_crc != crc32c_b64(data):
        raise gexc.BadRequest(
            f'Provided CRC32C "{supplied_crc}" doesn\'t match calculated CRC32C "{crc32c_b64(data)}".'
        )
    supplied_md5 = resource.get("md5Hash")
    if supplied_md5 and supplied_md5 != md5_b64(data):
        raise gexc.BadRequest(
            f'Provided MD5 hash "{supplied_md5}" doesn\'t match calculated MD5 hash "{md5_b64(data)}".'
        )
