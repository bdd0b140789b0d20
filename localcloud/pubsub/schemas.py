"""In-memory Pub/Sub schemas: each schema's revisions, and the checks a topic's ``schema_settings`` puts on
what is published to it. The definitions and messages themselves are checked by ``schema_formats``.

Behaviour, from Google's pages:
- https://cloud.google.com/pubsub/docs/schemas: a definition is at most 300 KB; a schema has at most 20
  revisions; a message that does not conform to the topic's schema is not published.
- https://cloud.google.com/pubsub/docs/commit-schema-revision: a commit adds a revision, which becomes the
  schema's current one (what ``GetSchema`` without ``@revision`` and ``ListSchemas`` show). Each commit is a
  new revision here, even of an unchanged definition.
- https://cloud.google.com/pubsub/docs/roll-back-schemas: a rollback adds a revision with the definition
  of the one named.
- https://cloud.google.com/pubsub/docs/delete-schema-revision: a revision is named ``schema@revision_id``
  (the reference's example id is 8 hex digits, ``c7cfa2a8``); the only revision of a schema cannot be
  deleted; deleting a schema deletes every revision, and publishing to a topic that used it then fails;
  when a topic's first (last) revision is deleted, the next (previous) one takes its place. The page
  gives no status codes: both refusals are FAILED_PRECONDITION here.
- Not documented, chosen here: a schema name that does not exist is NOT_FOUND in Google's Pub/Sub words
  "Resource not found (resource=...)", also in a topic's ``schema_settings``; a 21st revision is
  RESOURCE_EXHAUSTED; a commit may change the schema's type; revisions are listed newest first.
- https://cloud.google.com/pubsub/docs/schemas-valid: a message published to a topic with a schema
  carries ``googclient_schemaname`` (``_deleted-schema_`` once deleted; ``SchemaSettings.schema`` says the
  same of the topic) and ``googclient_schemaencoding`` (``JSON`` or ``BINARY``); Google's samples also
  read ``googclient_schemarevisionid``, the revision it validated against (newest first here).
- A message that fails is refused, the whole request with it, with INVALID_ARGUMENT "Invalid data in
  message: Message failed schema validation." (the text in googleapis/java-pubsub-group-kafka-connector#272);
  a duplicate schema is ALREADY_EXISTS "Resource already exists in the project (resource=...)"
  (terraform-google-modules/terraform-google-pubsub#119); a topic needs an encoding with its schema
  (GoogleCloudPlatform/k8s-config-connector#698).

Views (the ``view`` fields of ``google/pubsub/v1/schema.proto``): BASIC is everything but the definition;
``GetSchema`` answers FULL when no view is asked for, the List methods BASIC.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from google.api_core import exceptions as gexc
from google.pubsub_v1.types import schema as schema_types

from localcloud.clock import Clock
from localcloud.pubsub import names
from localcloud.pubsub.protos import timestamp_of
from localcloud.pubsub.schema_formats import (
    BINARY,
    JSON,
    InvalidMessageError,
    InvalidSchemaError,
    MessageChecker,
    compile_schema,
)

SchemaPb = schema_types.Schema.pb()
FULL = schema_types.SchemaView.FULL
BASIC = schema_types.SchemaView.BASIC
DELETED_SCHEMA = "_deleted-schema_"
MAX_DEFINITION_BYTES = 300 * 1000
MAX_REVISIONS = 20
ENCODING_NAMES = {JSON: "JSON", BINARY: "BINARY"}
SCHEMA_SETTINGS_FIELDS = frozenset({"schema", "encoding", "first_revision_id", "last_revision_id"})


@dataclass(eq=False)
class Revision:
    pb: Any  # raw Schema pb, name without @revision
    checker: MessageChecker


@dataclass(eq=False)
class SchemaRecord:
    name: str
    revisions: dict[str, Revision] = field(default_factory=dict)  # by id, oldest first
    created: list[str] = field(default_factory=list)  # every revision id ever committed, deleted ones too

    @property
    def current(self) -> Revision:
        return next(reversed(self.revisions.values()))


def view(pb: Any, requested: int, default: int = BASIC) -> Any:
    """``pb`` as the ``view`` asks (``default`` when unset): FULL is everything, BASIC all but the definition."""
    shown = SchemaPb()
    shown.CopyFrom(pb)
    if (requested or default) != FULL:
        shown.ClearField("definition")
        shown.ClearField("compiled_proto_schema")
    return shown


def checked_definition(schema: Any) -> MessageChecker:
    """The checker for ``schema``'s definition; INVALID_ARGUMENT when it is not a valid one."""
    if len(schema.definition.encode()) > MAX_DEFINITION_BYTES:
        raise gexc.InvalidArgument(f"Invalid [schema.definition]: larger than {MAX_DEFINITION_BYTES} bytes")
    if not schema.definition and not schema.HasField("compiled_proto_schema"):
        raise gexc.InvalidArgument("Invalid [schema.definition]: a definition is required")
    try:
        return compile_schema(schema)
    except InvalidSchemaError as error:
        raise gexc.InvalidArgument(str(error)) from None


def check_encoding(encoding: int, field_name: str) -> None:
    if encoding not in ENCODING_NAMES:
        raise gexc.InvalidArgument(f"Invalid [{field_name}]: the encoding must be JSON or BINARY")


class SchemaRegistry:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.schemas: dict[str, SchemaRecord] = {}

    # ---- lookups -----------------------------------------------------------------------------

    def record(self, name: str, field_name: str = "name") -> SchemaRecord:
        found = self.schemas.get(name)
        if found is not None:
            return found
        _, schema_id = names.schema(name, field_name)
        raise gexc.NotFound(f"Resource not found (resource={schema_id}).")

    def revision(self, name: str, field_name: str = "name") -> Revision:
        """``projects/p/schemas/s`` is the current revision, ``projects/p/schemas/s@id`` that one."""
        base, _, revision_id = name.partition("@")
        record = self.record(base, field_name)
        if not revision_id:
            return record.current
        found = record.revisions.get(revision_id)
        if found is None:
            raise gexc.NotFound(f"Resource not found (resource={names.schema(base)[1]}@{revision_id}).")
        return found

    def listed(self, project: str) -> list[Any]:
        """The current revision of every schema of ``project``, by name."""
        prefix = f"projects/{names.project(project, 'parent')}/schemas/"
        return [self.schemas[n].current.pb for n in sorted(self.schemas) if n.startswith(prefix)]

    def revisions(self, name: str) -> list[Any]:
        """Newest first."""
        return [revision.pb for revision in reversed(self.record(name).revisions.values())]

    # ---- changes -----------------------------------------------------------------------------

    def create(self, parent: str, schema: Any, schema_id: str) -> Any:
        names.project(parent, "parent")
        name = f"{parent}/schemas/{schema_id}"
        if not schema_id:
            raise gexc.InvalidArgument(f"Invalid resource name given (name={name}).")
        names.schema(name, "schema_id")
        checker = checked_definition(schema)
        if name in self.schemas:
            raise gexc.AlreadyExists(f"Resource already exists in the project (resource={name}).")
        record = self.schemas[name] = SchemaRecord(name)
        return self._add(record, schema, checker)

    def commit(self, name: str, schema: Any) -> Any:
        record = self.record(name)
        checker = checked_definition(schema)
        if len(record.revisions) >= MAX_REVISIONS:
            raise gexc.ResourceExhausted(
                f"Schema {name} has {MAX_REVISIONS} revisions, the most a schema may have: delete one first"
            )
        return self._add(record, schema, checker)

    def rollback(self, name: str, revision_id: str) -> Any:
        record = self.record(name)
        if not revision_id:
            raise gexc.InvalidArgument("Invalid [revision_id]: a revision id is required")
        source = record.revisions.get(revision_id)
        if source is None:
            raise gexc.NotFound(f"Resource not found (resource={names.schema(name)[1]}@{revision_id}).")
        if len(record.revisions) >= MAX_REVISIONS:
            raise gexc.ResourceExhausted(
                f"Schema {name} has {MAX_REVISIONS} revisions, the most a schema may have"
            )
        return self._add(record, source.pb, source.checker)

    def _add(self, record: SchemaRecord, schema: Any, checker: MessageChecker) -> Any:
        revision_id = secrets.token_hex(4)
        while revision_id in record.created:
            revision_id = secrets.token_hex(4)
        pb = SchemaPb(
            name=record.name, type_=schema.type_, definition=schema.definition, revision_id=revision_id
        )
        if schema.HasField("compiled_proto_schema"):
            pb.compiled_proto_schema.CopyFrom(schema.compiled_proto_schema)
        pb.revision_create_time.CopyFrom(timestamp_of(self.clock.now()))
        record.revisions[revision_id] = Revision(pb, checker)
        record.created.append(revision_id)
        return pb

    def delete_revision(self, name: str, deprecated_revision_id: str) -> Any:
        base, _, revision_id = name.partition("@")
        revision_id = revision_id or deprecated_revision_id
        if not revision_id:
            raise gexc.InvalidArgument(f"Invalid [name]: {name!r} names no revision (schema@revision_id)")
        revision = self.revision(f"{base}@{revision_id}")
        record = self.schemas[base]
        if len(record.revisions) == 1:
            raise gexc.FailedPrecondition(
                f"{revision_id} is the only revision of {base}: delete the schema instead"
            )
        del record.revisions[revision_id]
        return revision.pb

    def delete(self, name: str, topics: Iterable[Any]) -> None:
        """Topics that used the schema keep ``_deleted-schema_`` in its place."""
        if "@" in name:
            raise gexc.InvalidArgument(
                f"Invalid [name]: {name!r}: delete a revision with DeleteSchemaRevision"
            )
        self.record(name)
        del self.schemas[name]
        for topic in topics:
            if topic.schema_settings.schema == name:
                topic.schema_settings.schema = DELETED_SCHEMA

    # ---- topics ------------------------------------------------------------------------------

    def check_settings(self, settings: Any) -> None:
        """A topic's ``schema_settings``: an existing schema, an encoding, a range of its revisions."""
        record = self.record(settings.schema, "schema_settings.schema")
        check_encoding(settings.encoding, "schema_settings.encoding")
        for part in ("first_revision_id", "last_revision_id"):
            revision_id = getattr(settings, part)
            if revision_id and revision_id not in record.revisions:
                raise gexc.InvalidArgument(
                    f"Invalid [schema_settings.{part}]: {revision_id} is not a revision of {settings.schema}"
                )
        first, last = settings.first_revision_id, settings.last_revision_id
        if first and last and record.created.index(first) > record.created.index(last):
            raise gexc.InvalidArgument(
                f"Invalid [schema_settings]: first_revision_id {first} was committed after last_revision_id {last}"
            )

    def allowed(self, settings: Any) -> list[Revision]:
        """The revisions a message may validate against, newest first."""
        record = self.schemas.get(settings.schema)
        if record is None:
            return []
        created = record.created
        low = created.index(settings.first_revision_id) if settings.first_revision_id in created else 0
        high = (
            created.index(settings.last_revision_id) if settings.last_revision_id in created else len(created)
        )
        window = set(created[low : high + 1])
        return [r for rid, r in reversed(record.revisions.items()) if rid in window]

    def stamp(self, topic: Any, messages: Any) -> None:
        """Check every message of a Publish against ``topic``'s schema, then give each the
        ``googclient_*`` attributes; one that fails refuses the whole request and changes none."""
        if not topic.HasField("schema_settings"):
            return
        settings = topic.schema_settings
        if settings.schema == DELETED_SCHEMA or settings.schema not in self.schemas:
            raise gexc.FailedPrecondition(f"The schema of topic {topic.name} has been deleted")
        allowed = self.allowed(settings)
        chosen: list[str] = []
        for index, message in enumerate(messages):
            reasons: list[str] = []
            for revision in allowed:
                try:
                    revision.checker.check(message.data, settings.encoding)
                except InvalidMessageError as error:
                    reasons.append(f"revision {revision.pb.revision_id}: {error}")
                    continue
                chosen.append(revision.pb.revision_id)
                break
            else:
                raise gexc.InvalidArgument(
                    "Invalid data in message: Message failed schema validation. "
                    f"(messages[{index}]: {'; '.join(reasons) or 'no revision of the schema is allowed'})"
                )
        encoding = ENCODING_NAMES.get(settings.encoding, "")
        for message, revision_id in zip(messages, chosen, strict=True):
            message.attributes["googclient_schemaname"] = settings.schema
            message.attributes["googclient_schemaencoding"] = encoding
            message.attributes["googclient_schemarevisionid"] = revision_id

    # ---- ValidateMessage ---------------------------------------------------------------------

    def validate_message(self, request: Any) -> None:
        names.project(request.parent, "parent")
        spec = request.WhichOneof("schema_spec")
        if spec == "name":
            checker = self.revision(request.name).checker
        elif spec == "schema":
            checker = checked_definition(request.schema)
        else:
            raise gexc.InvalidArgument("Invalid [schema_spec]: a schema name or a schema is required")
        check_encoding(request.encoding, "encoding")
        try:
            checker.check(request.message, request.encoding)
        except InvalidMessageError as error:
            raise gexc.InvalidArgument(f"Invalid data in message: {error}") from None


def merge_schema_settings(target: Any, source: Any, path: str) -> None:
    """Apply an update-mask path ``schema_settings`` or ``schema_settings.<field>`` of ``source`` (a Topic)
    to ``target``."""
    if path == "schema_settings":
        if source.HasField("schema_settings"):
            target.schema_settings.CopyFrom(source.schema_settings)
        else:
            target.ClearField("schema_settings")
        return
    part = path.removeprefix("schema_settings.")
    if part not in SCHEMA_SETTINGS_FIELDS:
        raise gexc.InvalidArgument(f"Invalid [update_mask]: cannot update field {path!r}")
    setattr(target.schema_settings, part, getattr(source.schema_settings, part))
