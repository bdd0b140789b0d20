"""Pub/Sub's SchemaService on the REST surface: the unmodified client with ``transport="rest"``, and plain
HTTP/JSON as the REST reference writes it (``POST /v1/{parent}/schemas?schemaId=``, ``{name}:commit``,
``{parent}/schemas:validateMessage``)."""

from __future__ import annotations

import base64
import json

import requests
from google.cloud import pubsub_v1
from google.pubsub_v1.types import Schema, SchemaView

from tests.unit.localcloud.rest.conftest import RestCloud

PROJECT = "projects/rest-schemas"
AVRO = json.dumps(
    {
        "type": "record",
        "name": "Order",
        "fields": [{"name": "id", "type": "string"}, {"name": "n", "type": "int"}],
    }
)


def test_schema_client_works_over_rest(rest_cloud: RestCloud) -> None:
    client = pubsub_v1.SchemaServiceClient(**RestCloud.client_kwargs(rest_cloud.pubsub))
    created = client.create_schema(
        parent=PROJECT, schema=Schema(type_=Schema.Type.AVRO, definition=AVRO), schema_id="orders"
    )
    committed = client.commit_schema(
        name=created.name, schema=Schema(type_=Schema.Type.AVRO, definition=AVRO)
    )
    got = client.get_schema(
        request={"name": f"{created.name}@{created.revision_id}", "view": SchemaView.FULL}
    )
    assert (got.type_, got.definition, got.revision_id) == (Schema.Type.AVRO, AVRO, created.revision_id)
    revisions = [s.revision_id for s in client.list_schema_revisions(name=created.name)]
    assert revisions == [committed.revision_id, created.revision_id]
    client.delete_schema(name=created.name)
    assert list(client.list_schemas(parent=PROJECT)) == []


def test_plain_http_json_create_and_validate_message(rest_cloud: RestCloud) -> None:
    base = f"http://{rest_cloud.pubsub}/v1/{PROJECT}"
    created = requests.post(
        f"{base}/schemas",
        params={"schemaId": "http-orders"},
        json={"type": "AVRO", "definition": AVRO},
        timeout=30,
    )
    assert created.status_code == 200, created.text
    body = created.json()
    assert (body["name"], body["type"], len(body["revisionId"])) == (
        f"{PROJECT}/schemas/http-orders",
        "AVRO",
        8,
    )

    def validate(message: dict[str, object]) -> requests.Response:
        data = base64.b64encode(json.dumps(message).encode()).decode()
        request = {"name": f"{PROJECT}/schemas/http-orders", "message": data, "encoding": "JSON"}
        return requests.post(f"{base}/schemas:validateMessage", json=request, timeout=30)

    assert validate({"id": "o-1", "n": 3}).status_code == 200
    refused = validate({"id": "o-1", "n": "three"})
    assert refused.status_code == 400
    assert refused.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "$.n" in refused.json()["error"]["message"]
