"""The ``google.pubsub.v1.SchemaService`` handlers, named after the real RPCs; the state is
``schemas.SchemaRegistry`` (shared with the Publisher, which checks what is published against it)."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import empty_pb2
from google.pubsub_v1.types import schema as schema_types

from localcloud._paging import Paging
from localcloud.pubsub import names
from localcloud.pubsub.schemas import FULL, SchemaRegistry, checked_definition, view
from localcloud.pubsub.state import PubSubState

PB = {
    name: getattr(schema_types, name).pb()
    for name in dir(schema_types)
    if hasattr(getattr(schema_types, name), "pb")
}
SCHEMA_REQUESTS: dict[str, Any] = {
    "CreateSchema": PB["CreateSchemaRequest"],
    "GetSchema": PB["GetSchemaRequest"],
    "ListSchemas": PB["ListSchemasRequest"],
    "ListSchemaRevisions": PB["ListSchemaRevisionsRequest"],
    "CommitSchema": PB["CommitSchemaRequest"],
    "RollbackSchema": PB["RollbackSchemaRequest"],
    "DeleteSchemaRevision": PB["DeleteSchemaRevisionRequest"],
    "DeleteSchema": PB["DeleteSchemaRequest"],
    "ValidateSchema": PB["ValidateSchemaRequest"],
    "ValidateMessage": PB["ValidateMessageRequest"],
}
PAGES = Paging(default_size=100, invalid_token_error="Invalid [page_token]: {token!r}")


class SchemaApi:
    def __init__(self, state: PubSubState) -> None:
        self.state = state
        self.registry: SchemaRegistry = state.schemas

    async def CreateSchema(self, request: Any, context: Any) -> Any:
        return self.registry.create(request.parent, request.schema, request.schema_id)

    async def GetSchema(self, request: Any, context: Any) -> Any:
        return view(self.registry.revision(request.name).pb, request.view, default=FULL)

    async def ListSchemas(self, request: Any, context: Any) -> Any:
        items, token = PAGES.offset_page(
            self.registry.listed(request.parent), request.page_size, request.page_token
        )
        return PB["ListSchemasResponse"](
            schemas=[view(pb, request.view) for pb in items], next_page_token=token
        )

    async def ListSchemaRevisions(self, request: Any, context: Any) -> Any:
        items, token = PAGES.offset_page(
            self.registry.revisions(request.name), request.page_size, request.page_token
        )
        return PB["ListSchemaRevisionsResponse"](
            schemas=[view(pb, request.view) for pb in items], next_page_token=token
        )

    async def CommitSchema(self, request: Any, context: Any) -> Any:
        return self.registry.commit(request.name, request.schema)

    async def RollbackSchema(self, request: Any, context: Any) -> Any:
        return self.registry.rollback(request.name, request.revision_id)

    async def DeleteSchemaRevision(self, request: Any, context: Any) -> Any:
        return self.registry.delete_revision(request.name, request.revision_id)

    async def DeleteSchema(self, request: Any, context: Any) -> Any:
        self.registry.delete(request.name, self.state.topics.values())
        return empty_pb2.Empty()

    async def ValidateSchema(self, request: Any, context: Any) -> Any:
        names.project(request.parent, "parent")
        checked_definition(request.schema)
        return PB["ValidateSchemaResponse"]()

    async def ValidateMessage(self, request: Any, context: Any) -> Any:
        self.registry.validate_message(request)
        return PB["ValidateMessageResponse"]()


def schema_handler_tables(api: SchemaApi) -> list[grpc.GenericRpcHandler]:
    from localcloud import _grpc

    service = "google.pubsub.v1.SchemaService"
    methods = {
        name: _grpc.unary(getattr(api, name), request_type, method=f"{service}/{name}")
        for name, request_type in SCHEMA_REQUESTS.items()
    }
    return [_grpc.service(service, methods)]
