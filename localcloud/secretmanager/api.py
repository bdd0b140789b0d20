"""Secret Manager RPC handlers, named after the RPCs of ``google.cloud.secretmanager.v1.SecretManagerService``.

Requests and responses are the raw protobuf classes behind the proto-plus types of
``google-cloud-secret-manager``; every rule lives in :mod:`localcloud.secretmanager.state`.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc
from google.cloud.secretmanager_v1.types import resources, service
from google.iam.v1 import iam_policy_pb2, policy_pb2
from google.protobuf import empty_pb2

from localcloud._paging import CHECKED_OFFSETS
from localcloud.secretmanager.state import SecretStore, State

PAGES = CHECKED_OFFSETS
Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class SecretManagerApi:
    def __init__(self, store: SecretStore) -> None:
        self.store = store

    async def CreateSecret(self, request: Any, context: Context) -> Any:
        return self.store.create_secret(request.parent, request.secret_id, request.secret)

    async def GetSecret(self, request: Any, context: Context) -> Any:
        return self.store.get_secret(request.name)

    async def ListSecrets(self, request: Any, context: Context) -> Any:
        secrets = self.store.list_secrets(request.parent, request.filter)
        chunk, token = PAGES.offset_page(secrets, request.page_size, request.page_token)
        response = service.ListSecretsResponse.pb()(next_page_token=token, total_size=len(secrets))
        response.secrets.extend(chunk)
        return response

    async def UpdateSecret(self, request: Any, context: Context) -> Any:
        return self.store.update_secret(request.secret, list(request.update_mask.paths))

    async def DeleteSecret(self, request: Any, context: Context) -> Any:
        self.store.delete_secret(request.name, request.etag)
        return empty_pb2.Empty()

    async def AddSecretVersion(self, request: Any, context: Context) -> Any:
        payload = request.payload
        crc = payload.data_crc32c if payload.HasField("data_crc32c") else None
        return self.store.add_version(request.parent, payload.data, crc)

    async def GetSecretVersion(self, request: Any, context: Context) -> Any:
        return self.store.get_version(request.name)

    async def ListSecretVersions(self, request: Any, context: Context) -> Any:
        versions = self.store.list_versions(request.parent, request.filter)
        chunk, token = PAGES.offset_page(versions, request.page_size, request.page_token)
        response = service.ListSecretVersionsResponse.pb()(next_page_token=token, total_size=len(versions))
        response.versions.extend(chunk)
        return response

    async def AccessSecretVersion(self, request: Any, context: Context) -> Any:
        name, data, crc = self.store.access_version(request.name)
        payload = resources.SecretPayload.pb()(data=data, data_crc32c=crc)
        return service.AccessSecretVersionResponse.pb()(name=name, payload=payload)

    async def EnableSecretVersion(self, request: Any, context: Context) -> Any:
        return self.store.set_version_state(request.name, State.ENABLED, request.etag)

    async def DisableSecretVersion(self, request: Any, context: Context) -> Any:
        return self.store.set_version_state(request.name, State.DISABLED, request.etag)

    async def DestroySecretVersion(self, request: Any, context: Context) -> Any:
        return self.store.set_version_state(request.name, State.DESTROYED, request.etag)

    async def GetIamPolicy(self, request: Any, context: Context) -> policy_pb2.Policy:
        return self.store.get_policy(request.resource)

    async def SetIamPolicy(self, request: Any, context: Context) -> policy_pb2.Policy:
        return self.store.set_policy(request.resource, request.policy)

    async def TestIamPermissions(self, request: Any, context: Context) -> Any:
        allowed = self.store.test_permissions(request.resource, list(request.permissions))
        return iam_policy_pb2.TestIamPermissionsResponse(permissions=allowed)


class _RedactedMessage:
    """A request whose text form hides its fields; attribute access goes to the message."""

    __slots__ = ("_message",)

    def __init__(self, message: Any) -> None:
        object.__setattr__(self, "_message", message)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._message, name)

    def __setattr__(self, name: str, value: Any) -> None:  # a project number read as its id
        setattr(self._message, name, value)

    def __str__(self) -> str:
        return f"<{type(self._message).__name__}: redacted>"

    __repr__ = __str__


class Redacting:
    """Request type for the gRPC shell that keeps secret payloads out of its DEBUG request log."""

    def __init__(self, message_class: Any) -> None:
        self._message_class = message_class

    def deserialize(self, data: bytes) -> _RedactedMessage:
        return _RedactedMessage(self._message_class.FromString(data))


REQUEST_TYPES: dict[str, Any] = {
    "CreateSecret": service.CreateSecretRequest.pb(),
    "GetSecret": service.GetSecretRequest.pb(),
    "ListSecrets": service.ListSecretsRequest.pb(),
    "UpdateSecret": service.UpdateSecretRequest.pb(),
    "DeleteSecret": service.DeleteSecretRequest.pb(),
    "AddSecretVersion": Redacting(service.AddSecretVersionRequest.pb()),
    "GetSecretVersion": service.GetSecretVersionRequest.pb(),
    "ListSecretVersions": service.ListSecretVersionsRequest.pb(),
    "AccessSecretVersion": service.AccessSecretVersionRequest.pb(),
    "EnableSecretVersion": service.EnableSecretVersionRequest.pb(),
    "DisableSecretVersion": service.DisableSecretVersionRequest.pb(),
    "DestroySecretVersion": service.DestroySecretVersionRequest.pb(),
    "GetIamPolicy": iam_policy_pb2.GetIamPolicyRequest,
    "SetIamPolicy": iam_policy_pb2.SetIamPolicyRequest,
    "TestIamPermissions": iam_policy_pb2.TestIamPermissionsRequest,
}
