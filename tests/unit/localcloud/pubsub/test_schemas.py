"""SchemaService and topics with schemas, driven by the real ``SchemaServiceClient`` and ``PublisherClient``
(the calls Google's own schema samples make: create, commit, get ``@revision``, list, list revisions,
rollback, delete revision, delete, a topic with a schema, publish)."""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
import pytest
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.protobuf import descriptor_pb2, field_mask_pb2
from google.pubsub_v1.types import Encoding, Schema, SchemaView

from localcloud.pubsub.proto_text import compile_proto

from .conftest import PROJECT, Local, call

PARENT = f"projects/{PROJECT}"
STATE_AVRO: dict[str, Any] = {
    "type": "record",
    "name": "State",
    "namespace": "utilities",
    "fields": [
        {"name": "name", "type": "string"},
        {"name": "post_abbr", "type": "string"},
    ],
}
STATE_AVRO_PLUS: dict[str, Any] = {
    **STATE_AVRO,
    "fields": [*STATE_AVRO["fields"], {"name": "population", "type": "long", "default": 0}],
}
STATE_PROTO = """
syntax = "proto3";
package utilities;

message StateProto {
  string name = 1;
  string post_abbr = 2;
  optional int64 population = 3;
  repeated string cities = 4;
  Region region = 5;
  enum Region { REGION_UNSPECIFIED = 0; WEST = 1; }
}
"""


def schema_path(schema_id: str) -> str:
    return f"{PARENT}/schemas/{schema_id}"


def avro(definition: dict[str, Any]) -> Schema:
    return Schema(type_=Schema.Type.AVRO, definition=json.dumps(definition))


async def create(client: pubsub_v1.SchemaServiceClient, schema_id: str, schema: Schema) -> Schema:
    return await call(
        client.create_schema, request={"parent": PARENT, "schema": schema, "schema_id": schema_id}
    )


def avro_binary(record: dict[str, Any], definition: dict[str, Any] = STATE_AVRO) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(definition), record)
    return out.getvalue()


@pytest.fixture
def schemas(live: Local) -> pubsub_v1.SchemaServiceClient:
    return pubsub_v1.SchemaServiceClient()


async def test_schema_revisions_are_committed_listed_rolled_back_and_deleted(
    schemas: pubsub_v1.SchemaServiceClient,
) -> None:
    name = schema_path("states")
    first = await create(schemas, "states", avro(STATE_AVRO))
    assert first.name == name
    assert len(first.revision_id) == 8
    assert first.revision_create_time is not None
    with pytest.raises(gexc.AlreadyExists, match="Resource already exists"):
        await create(schemas, "states", avro(STATE_AVRO))

    second = await call(schemas.commit_schema, request={"name": name, "schema": avro(STATE_AVRO_PLUS)})
    assert second.revision_id != first.revision_id
    current = await call(schemas.get_schema, request={"name": name, "view": SchemaView.FULL})
    assert current.revision_id == second.revision_id
    assert "population" in current.definition
    basic = await call(schemas.get_schema, request={"name": name, "view": SchemaView.BASIC})
    assert basic.definition == "" and basic.type_ == Schema.Type.AVRO
    assert (
        "population" in (await call(schemas.get_schema, request={"name": name})).definition
    )  # FULL unless asked
    old = await call(
        schemas.get_schema, request={"name": f"{name}@{first.revision_id}", "view": SchemaView.FULL}
    )
    assert "population" not in old.definition

    revisions = list(await call(schemas.list_schema_revisions, request={"name": name}))
    assert [r.revision_id for r in revisions] == [second.revision_id, first.revision_id]

    rolled = await call(schemas.rollback_schema, request={"name": name, "revision_id": first.revision_id})
    assert rolled.revision_id not in (first.revision_id, second.revision_id)
    current = await call(schemas.get_schema, request={"name": name, "view": SchemaView.FULL})
    assert current.revision_id == rolled.revision_id and "population" not in current.definition

    deleted = await call(schemas.delete_schema_revision, request={"name": f"{name}@{second.revision_id}"})
    assert deleted.revision_id == second.revision_id
    with pytest.raises(gexc.NotFound):
        await call(schemas.get_schema, request={"name": f"{name}@{second.revision_id}"})
    await call(schemas.delete_schema_revision, request={"name": f"{name}@{first.revision_id}"})
    with pytest.raises(gexc.FailedPrecondition, match="only revision"):
        await call(schemas.delete_schema_revision, request={"name": f"{name}@{rolled.revision_id}"})

    listed = list(await call(schemas.list_schemas, request={"parent": PARENT}))
    assert [(s.name, s.definition) for s in listed] == [(name, "")]  # BASIC unless asked
    await call(schemas.delete_schema, request={"name": name})
    with pytest.raises(gexc.NotFound):
        await call(schemas.get_schema, request={"name": name})
    assert list(await call(schemas.list_schemas, request={"parent": PARENT})) == []


async def test_invalid_definitions_and_names_are_refused(schemas: pubsub_v1.SchemaServiceClient) -> None:
    with pytest.raises(gexc.InvalidArgument, match="Avro"):
        await create(schemas, "bad-avro", Schema(type_=Schema.Type.AVRO, definition='{"type": "recrod"}'))
    with pytest.raises(gexc.InvalidArgument, match="line 1"):
        await create(
            schemas,
            "bad-proto",
            Schema(
                type_=Schema.Type.PROTOCOL_BUFFER, definition='syntax = "proto3"; message M { strin a = 1; }'
            ),
        )
    with pytest.raises(gexc.InvalidArgument, match="one top-level message"):
        two = 'syntax = "proto3"; message A { string a = 1; } message B { string b = 1; }'
        await call(
            schemas.validate_schema,
            request={"parent": PARENT, "schema": {"type_": Schema.Type.PROTOCOL_BUFFER, "definition": two}},
        )
    with pytest.raises(gexc.InvalidArgument, match="type"):
        await create(schemas, "no-type", Schema(definition=json.dumps(STATE_AVRO)))
    with pytest.raises(gexc.InvalidArgument, match="name"):
        await create(schemas, "goog-reserved", avro(STATE_AVRO))
    with pytest.raises(gexc.NotFound):
        await call(
            schemas.commit_schema, request={"name": schema_path("missing"), "schema": avro(STATE_AVRO)}
        )
    await call(
        schemas.validate_schema,
        request={
            "parent": PARENT,
            "schema": {"type_": Schema.Type.PROTOCOL_BUFFER, "definition": STATE_PROTO},
        },
    )


async def test_validate_message_checks_json_and_binary_against_a_schema(
    schemas: pubsub_v1.SchemaServiceClient,
) -> None:
    await create(schemas, "states", avro(STATE_AVRO))
    good = json.dumps({"name": "Alaska", "post_abbr": "AK"}).encode()
    await call(
        schemas.validate_message,
        request={"parent": PARENT, "name": schema_path("states"), "message": good, "encoding": Encoding.JSON},
    )
    with pytest.raises(gexc.InvalidArgument, match="post_abbr"):
        await call(
            schemas.validate_message,
            request={
                "parent": PARENT,
                "name": schema_path("states"),
                "message": json.dumps({"name": "Alaska"}).encode(),
                "encoding": Encoding.JSON,
            },
        )
    binary = avro_binary({"name": "Alaska", "post_abbr": "AK"})
    await call(
        schemas.validate_message,
        request={
            "parent": PARENT,
            "name": schema_path("states"),
            "message": binary,
            "encoding": Encoding.BINARY,
        },
    )
    with pytest.raises(gexc.InvalidArgument, match="bytes left"):
        await call(
            schemas.validate_message,
            request={
                "parent": PARENT,
                "name": schema_path("states"),
                "message": binary + b"\x00",
                "encoding": Encoding.BINARY,
            },
        )
    adhoc = {"type_": Schema.Type.PROTOCOL_BUFFER, "definition": STATE_PROTO}
    with pytest.raises(gexc.InvalidArgument, match="StateProto"):
        await call(
            schemas.validate_message,
            request={
                "parent": PARENT,
                "schema": adhoc,
                "message": b'{"nme": "x"}',
                "encoding": Encoding.JSON,
            },
        )


async def test_a_topic_with_an_avro_schema_accepts_valid_json_and_refuses_the_rest(
    live: Local, schemas: pubsub_v1.SchemaServiceClient
) -> None:
    created = await create(schemas, "states", avro(STATE_AVRO))
    topic, sub = live.topic("states"), live.subscription("states-reader")
    with pytest.raises(gexc.NotFound):
        await call(
            live.publisher.create_topic,
            request={
                "name": topic,
                "schema_settings": {"schema": schema_path("nope"), "encoding": Encoding.JSON},
            },
        )
    with pytest.raises(gexc.InvalidArgument, match="encoding"):
        await call(
            live.publisher.create_topic,
            request={"name": topic, "schema_settings": {"schema": schema_path("states")}},
        )
    made = await call(
        live.publisher.create_topic,
        request={
            "name": topic,
            "schema_settings": {"schema": schema_path("states"), "encoding": Encoding.JSON},
        },
    )
    assert made.schema_settings.encoding == Encoding.JSON
    await call(live.subscriber.create_subscription, name=sub, topic=topic)

    message_id = await call(
        live.publisher.publish(topic, json.dumps({"name": "Alaska", "post_abbr": "AK"}).encode()).result
    )
    with pytest.raises(gexc.InvalidArgument, match="Message failed schema validation"):
        await call(live.publisher.publish(topic, json.dumps({"name": 7, "post_abbr": "AK"}).encode()).result)

    pulled = await call(live.subscriber.pull, subscription=sub, max_messages=10)
    assert [m.message.message_id for m in pulled.received_messages] == [message_id]
    attributes = dict(pulled.received_messages[0].message.attributes)
    assert attributes == {
        "googclient_schemaname": schema_path("states"),
        "googclient_schemaencoding": "JSON",
        "googclient_schemarevisionid": created.revision_id,
    }

    await call(schemas.delete_schema, request={"name": schema_path("states")})
    orphan = await call(live.publisher.get_topic, topic=topic)
    assert orphan.schema_settings.schema == "_deleted-schema_"
    with pytest.raises(gexc.FailedPrecondition):
        await call(
            live.publisher.publish(topic, json.dumps({"name": "A", "post_abbr": "AK"}).encode()).result
        )


async def test_a_topic_validates_against_its_revision_range_newest_first(
    live: Local, schemas: pubsub_v1.SchemaServiceClient
) -> None:
    first = await create(schemas, "states", avro(STATE_AVRO))
    second = await call(
        schemas.commit_schema, request={"name": schema_path("states"), "schema": avro(STATE_AVRO_PLUS)}
    )
    topic, sub = live.topic("states"), live.subscription("states-reader")
    await call(
        live.publisher.create_topic,
        request={
            "name": topic,
            "schema_settings": {
                "schema": schema_path("states"),
                "encoding": Encoding.BINARY,
                "first_revision_id": first.revision_id,
                "last_revision_id": first.revision_id,
            },
        },
    )
    await call(live.subscriber.create_subscription, name=sub, topic=topic)
    plus = avro_binary({"name": "Alaska", "post_abbr": "AK", "population": 733_000}, STATE_AVRO_PLUS)
    with pytest.raises(gexc.InvalidArgument, match="schema validation"):
        await call(live.publisher.publish(topic, plus).result)

    await call(
        live.publisher.update_topic,
        request={
            "topic": {"name": topic, "schema_settings": {"last_revision_id": second.revision_id}},
            "update_mask": field_mask_pb2.FieldMask(paths=["schema_settings.last_revision_id"]),
        },
    )
    await call(live.publisher.publish(topic, plus).result)
    await call(live.publisher.publish(topic, avro_binary({"name": "Ohio", "post_abbr": "OH"})).result)
    pulled = await call(live.subscriber.pull, subscription=sub, max_messages=10)
    revisions = [m.message.attributes["googclient_schemarevisionid"] for m in pulled.received_messages]
    assert revisions == [second.revision_id, first.revision_id]
    assert {m.message.attributes["googclient_schemaencoding"] for m in pulled.received_messages} == {"BINARY"}

    with pytest.raises(gexc.InvalidArgument, match="first_revision_id"):
        await call(
            live.publisher.update_topic,
            request={
                "topic": {"name": topic, "schema_settings": {"first_revision_id": "0000beef"}},
                "update_mask": field_mask_pb2.FieldMask(paths=["schema_settings.first_revision_id"]),
            },
        )


async def test_a_topic_with_a_protobuf_schema_takes_binary_messages(
    live: Local, schemas: pubsub_v1.SchemaServiceClient
) -> None:
    await create(schemas, "states-proto", Schema(type_=Schema.Type.PROTOCOL_BUFFER, definition=STATE_PROTO))
    topic = live.topic("states-proto")
    await call(
        live.publisher.create_topic,
        request={
            "name": topic,
            "schema_settings": {"schema": schema_path("states-proto"), "encoding": Encoding.BINARY},
        },
    )
    state_class = compile_proto(STATE_PROTO)
    state = state_class(name="Alaska", post_abbr="AK", population=733_000, cities=["Juneau"], region=1)
    await call(live.publisher.publish(topic, state.SerializeToString()).result)
    with pytest.raises(gexc.InvalidArgument, match="schema validation"):
        await call(live.publisher.publish(topic, b"\x0a\xff").result)  # a string field cut short


async def test_a_compiled_descriptor_set_is_a_protobuf_schema(schemas: pubsub_v1.SchemaServiceClient) -> None:
    state_class = compile_proto(STATE_PROTO)
    files = descriptor_pb2.FileDescriptorSet()
    state_class.DESCRIPTOR.file.CopyToProto(files.file.add())
    compiled = {"root_message": "utilities.StateProto", "compiled_bytes": files.SerializeToString()}
    schema = {"type_": Schema.Type.PROTOCOL_BUFFER, "compiled_proto_schema": compiled}
    await create(schemas, "compiled", Schema(schema))
    message = state_class(name="Ohio").SerializeToString()
    await call(
        schemas.validate_message,
        request={
            "parent": PARENT,
            "name": schema_path("compiled"),
            "message": message,
            "encoding": Encoding.BINARY,
        },
    )


async def test_a_schema_has_an_iam_policy(live: Local, schemas: pubsub_v1.SchemaServiceClient) -> None:
    created = await create(schemas, "states", avro(STATE_AVRO))
    policy = {"bindings": [{"role": "roles/pubsub.viewer", "members": ["user:ana@example.com"]}]}
    await call(live.publisher.set_iam_policy, request={"resource": created.name, "policy": policy})
    got = await call(live.publisher.get_iam_policy, request={"resource": created.name})
    assert [b.role for b in got.bindings] == ["roles/pubsub.viewer"]
    with pytest.raises(gexc.NotFound):
        await call(live.publisher.get_iam_policy, request={"resource": schema_path("missing")})
