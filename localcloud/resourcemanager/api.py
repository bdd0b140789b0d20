"""Resource Manager RPC handlers, named after the RPCs of ``google.cloud.resourcemanager.v3.TagKeys``,
``TagValues`` and ``TagBindings``, and ``google.longrunning.Operations/GetOperation``.

Requests and responses are the raw protobuf classes behind the proto-plus types of
``google-cloud-resource-manager``; every rule lives in :mod:`localcloud.resourcemanager.state`.

Every mutation answers a ``google.longrunning.Operation`` that is already ``done``, with the resource in
``response`` and the method's (empty) metadata message in ``metadata``, both packed in ``Any``: the client's
``operation.result()`` (``google.api_core.operation.Operation``) then returns at once without polling.
``GetOperation`` answers the same operation by its name, for a client that polls anyway.
"""

from __future__ import annotations

import logging
import secrets as _random
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import grpc
from google.api_core import exceptions as gexc
from google.cloud.resourcemanager_v3.types import tag_bindings, tag_keys, tag_values
from google.longrunning import operations_pb2
from google.protobuf import any_pb2, empty_pb2

from localcloud import _grpc
from localcloud._paging import Paging
from localcloud.resourcemanager.state import Mutation, TagStore

log = logging.getLogger("localcloud.resourcemanager")

# ListTagKeysRequest, ListTagValuesRequest, ListTagBindingsRequest: "The server allows a maximum of 300
# ... If unspecified, the server will use 100 as the default."
PAGES = Paging(
    default_size=100,
    max_size=300,
    invalid_token_error="page_token: {token!r} is not a token this service issued",
    base64_tokens=True,
)
Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
# A binding's resource → whether it still exists (None: cannot tell).
ResourceCheck = Callable[[str], Awaitable[bool | None]]

# kind of operation → its metadata message (``google.cloud.resourcemanager.v3.*Metadata``)
_METADATA: dict[str, Any] = {
    "tkc": tag_keys.CreateTagKeyMetadata.pb(),
    "tku": tag_keys.UpdateTagKeyMetadata.pb(),
    "tkd": tag_keys.DeleteTagKeyMetadata.pb(),
    "tvc": tag_values.CreateTagValueMetadata.pb(),
    "tvu": tag_values.UpdateTagValueMetadata.pb(),
    "tvd": tag_values.DeleteTagValueMetadata.pb(),
    "rctb": tag_bindings.CreateTagBindingMetadata.pb(),
    "rdtb": tag_bindings.DeleteTagBindingMetadata.pb(),
}


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


class Operations:
    """The finished operations of the mutations, by name (``operations/tkc.<hex>``), for GetOperation."""

    def __init__(self) -> None:
        self._done: dict[str, operations_pb2.Operation] = {}

    def finish(self, mutation: Mutation) -> operations_pb2.Operation:
        operation = operations_pb2.Operation(
            name=f"operations/{mutation.kind}.{_random.token_hex(10)}",
            done=True,
            metadata=_pack(_METADATA[mutation.kind]()),
            response=_pack(mutation.resource if mutation.resource is not None else empty_pb2.Empty()),
        )
        self._done[operation.name] = operation
        answer = operations_pb2.Operation()
        answer.CopyFrom(operation)
        return answer

    async def GetOperation(self, request: Any, context: Context) -> operations_pb2.Operation:
        found = self._done.get(request.name)
        if found is None:
            raise gexc.NotFound(f"Operation [{request.name}] not found.")
        answer = operations_pb2.Operation()
        answer.CopyFrom(found)
        return answer


class TagKeysApi:
    def __init__(self, store: TagStore, operations: Operations) -> None:
        self.store = store
        self.operations = operations

    async def CreateTagKey(self, request: Any, context: Context) -> Any:
        return self.operations.finish(self.store.create_key(request.tag_key, request.validate_only))

    async def GetTagKey(self, request: Any, context: Context) -> Any:
        return self.store.get_key(request.name)

    async def GetNamespacedTagKey(self, request: Any, context: Context) -> Any:
        return self.store.get_namespaced_key(request.name)

    async def ListTagKeys(self, request: Any, context: Context) -> Any:
        keys = self.store.list_keys(request.parent)
        chunk, token = PAGES.offset_page(keys, request.page_size, request.page_token)
        response = tag_keys.ListTagKeysResponse.pb()(next_page_token=token)
        response.tag_keys.extend(chunk)
        return response

    async def UpdateTagKey(self, request: Any, context: Context) -> Any:
        paths = list(request.update_mask.paths)
        return self.operations.finish(self.store.update_key(request.tag_key, paths, request.validate_only))

    async def DeleteTagKey(self, request: Any, context: Context) -> Any:
        mutation = self.store.delete_key(request.name, request.etag, request.validate_only)
        return self.operations.finish(mutation)


class TagValuesApi:
    def __init__(self, store: TagStore, operations: Operations, exists: ResourceCheck | None = None) -> None:
        self.store = store
        self.operations = operations
        self.exists = exists

    async def CreateTagValue(self, request: Any, context: Context) -> Any:
        return self.operations.finish(self.store.create_value(request.tag_value, request.validate_only))

    async def GetTagValue(self, request: Any, context: Context) -> Any:
        return self.store.get_value(request.name)

    async def GetNamespacedTagValue(self, request: Any, context: Context) -> Any:
        return self.store.get_namespaced_value(request.name)

    async def ListTagValues(self, request: Any, context: Context) -> Any:
        values = self.store.list_values(request.parent)
        chunk, token = PAGES.offset_page(values, request.page_size, request.page_token)
        response = tag_values.ListTagValuesResponse.pb()(next_page_token=token)
        response.tag_values.extend(chunk)
        return response

    async def UpdateTagValue(self, request: Any, context: Context) -> Any:
        paths = list(request.update_mask.paths)
        return self.operations.finish(
            self.store.update_value(request.tag_value, paths, request.validate_only)
        )

    async def DeleteTagValue(self, request: Any, context: Context) -> Any:
        await self._forget_bindings_of_deleted_resources(request.name)
        mutation = self.store.delete_value(request.name, request.etag, request.validate_only)
        return self.operations.finish(mutation)

    async def _forget_bindings_of_deleted_resources(self, value: str) -> None:
        """Google removes the bindings of a resource that is deleted; the emulator learns it here, asking the
        resource's emulator (see ``localcloud.resourcemanager.server``)."""
        if self.exists is None:
            return
        for binding in self.store.bindings_of_value(value):
            if await self.exists(binding.parent) is False:
                log.debug("%s: %s is gone, so is its binding", value, binding.parent)
                self.store.drop_binding(binding.name)


class TagBindingsApi:
    def __init__(self, store: TagStore, operations: Operations) -> None:
        self.store = store
        self.operations = operations

    async def CreateTagBinding(self, request: Any, context: Context) -> Any:
        return self.operations.finish(self.store.create_binding(request.tag_binding, request.validate_only))

    async def DeleteTagBinding(self, request: Any, context: Context) -> Any:
        return self.operations.finish(self.store.delete_binding(request.name))

    async def ListTagBindings(self, request: Any, context: Context) -> Any:
        bindings = self.store.list_bindings(request.parent)
        chunk, token = PAGES.offset_page(bindings, request.page_size, request.page_token)
        response = tag_bindings.ListTagBindingsResponse.pb()(next_page_token=token)
        response.tag_bindings.extend(chunk)
        return response


_SECRET_MANAGER = "//secretmanager.googleapis.com/"
_GET_SECRET = "/google.cloud.secretmanager.v1.SecretManagerService/GetSecret"


def secret_manager_check(address: str, timeout: float = 2.0) -> ResourceCheck:
    """Whether a Secret Manager resource (a secret, a regional secret) exists, asked of the Secret Manager
    emulator at ``address`` (in process when it runs on this event loop); None for other services' resources
    and when that emulator does not answer."""
    from google.cloud.secretmanager_v1.types import service

    request_type: Any = service.GetSecretRequest.pb()

    async def exists(resource: str) -> bool | None:
        if not resource.startswith(_SECRET_MANAGER):
            return None
        path = resource.removeprefix(_SECRET_MANAGER)
        secret = "/".join(path.split("/")[: 6 if "/locations/" in path else 4])
        channel = _grpc.channel(address)
        call = channel.unary_unary(_GET_SECRET, request_serializer=lambda m: m.SerializeToString())
        try:
            await call(request_type(name=secret), timeout=timeout)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return False
            return None
        finally:
            await channel.close()
        return True

    return exists


REQUEST_TYPES: dict[str, dict[str, Any]] = {
    "google.cloud.resourcemanager.v3.TagKeys": {
        "CreateTagKey": tag_keys.CreateTagKeyRequest.pb(),
        "GetTagKey": tag_keys.GetTagKeyRequest.pb(),
        "GetNamespacedTagKey": tag_keys.GetNamespacedTagKeyRequest.pb(),
        "ListTagKeys": tag_keys.ListTagKeysRequest.pb(),
        "UpdateTagKey": tag_keys.UpdateTagKeyRequest.pb(),
        "DeleteTagKey": tag_keys.DeleteTagKeyRequest.pb(),
    },
    "google.cloud.resourcemanager.v3.TagValues": {
        "CreateTagValue": tag_values.CreateTagValueRequest.pb(),
        "GetTagValue": tag_values.GetTagValueRequest.pb(),
        "GetNamespacedTagValue": tag_values.GetNamespacedTagValueRequest.pb(),
        "ListTagValues": tag_values.ListTagValuesRequest.pb(),
        "UpdateTagValue": tag_values.UpdateTagValueRequest.pb(),
        "DeleteTagValue": tag_values.DeleteTagValueRequest.pb(),
    },
    "google.cloud.resourcemanager.v3.TagBindings": {
        "CreateTagBinding": tag_bindings.CreateTagBindingRequest.pb(),
        "DeleteTagBinding": tag_bindings.DeleteTagBindingRequest.pb(),
        "ListTagBindings": tag_bindings.ListTagBindingsRequest.pb(),
    },
    "google.longrunning.Operations": {"GetOperation": operations_pb2.GetOperationRequest},
}
