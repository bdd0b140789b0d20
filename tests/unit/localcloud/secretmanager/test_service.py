from __future__ import annotations

import asyncio
import logging

import google_crc32c
import grpc
import pytest
from google.api_core import exceptions as gexc
from google.cloud import secretmanager
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
    SecretManagerServiceGrpcAsyncIOTransport,
    SecretManagerServiceGrpcTransport,
)
from google.iam.v1 import iam_policy_pb2, policy_pb2
from google.protobuf import duration_pb2, field_mask_pb2

from localcloud.auth import TokenAuthority
from localcloud.clock import ManualClock
from localcloud.config import LocalCloudConfig
from localcloud.runtime import Context
from localcloud.secretmanager.server import SecretManagerService, start

Client = secretmanager.SecretManagerServiceAsyncClient
PARENT = "projects/local-project"
State = secretmanager.SecretVersion.State


async def _secret(client: Client, secret_id: str = "api-key", **labels: str) -> secretmanager.Secret:
    return await client.create_secret(
        parent=PARENT,
        secret_id=secret_id,
        secret=secretmanager.Secret(
            replication=secretmanager.Replication(automatic=secretmanager.Replication.Automatic()),
            labels=labels,
        ),
    )


async def _add(client: Client, secret: str, data: bytes) -> secretmanager.SecretVersion:
    return await client.add_secret_version(parent=secret, payload=secretmanager.SecretPayload(data=data))


def _crc(data: bytes) -> int:
    checksum = google_crc32c.Checksum()
    checksum.update(data)
    return int(checksum.hexdigest(), 16)


async def test_created_secret_is_returned_with_name_time_and_etag(client: Client) -> None:
    secret = await _secret(client, team="saga")
    assert secret.name == f"{PARENT}/secrets/api-key"
    assert secret.etag.startswith('"')
    assert secret.create_time is not None
    fetched = await client.get_secret(name=secret.name)
    assert fetched.labels == {"team": "saga"}
    assert fetched.etag == secret.etag


async def test_creating_an_existing_secret_is_already_exists(client: Client) -> None:
    await _secret(client)
    with pytest.raises(gexc.AlreadyExists):
        await _secret(client)


@pytest.mark.parametrize("bad_id", ["has space", "", "dots.are.bad", "x" * 256, "slash/no"])
async def test_bad_secret_id_is_invalid_argument_naming_the_field(client: Client, bad_id: str) -> None:
    with pytest.raises(gexc.InvalidArgument, match="secret_id"):
        await _secret(client, bad_id)


async def test_unknown_secret_is_not_found(client: Client) -> None:
    with pytest.raises(gexc.NotFound):
        await client.get_secret(name=f"{PARENT}/secrets/missing")
    with pytest.raises(gexc.NotFound):
        await client.access_secret_version(name=f"{PARENT}/secrets/missing/versions/latest")


async def test_access_latest_returns_the_resolved_version_with_its_crc32c(client: Client) -> None:
    secret = await _secret(client)
    first = await _add(client, secret.name, b"one")
    second = await _add(client, secret.name, b"two")
    assert first.name.endswith("/versions/1") and second.name.endswith("/versions/2")
    assert second.state == State.ENABLED
    answer = await client.access_secret_version(name=f"{secret.name}/versions/latest")
    assert answer.name == second.name
    assert answer.payload.data == b"two"
    assert answer.payload.data_crc32c == _crc(b"two")
    pinned = await client.access_secret_version(name=first.name)
    assert pinned.payload.data == b"one"


async def test_latest_is_the_newest_version_even_when_disabled(client: Client) -> None:
    secret = await _secret(client)
    await _add(client, secret.name, b"one")
    newest = await _add(client, secret.name, b"two")
    await client.disable_secret_version(name=newest.name)
    with pytest.raises(gexc.FailedPrecondition, match="DISABLED"):
        await client.access_secret_version(name=f"{secret.name}/versions/latest")


async def test_matching_client_checksum_is_accepted_and_recorded(client: Client) -> None:
    secret = await _secret(client)
    version = await client.add_secret_version(
        parent=secret.name, payload=secretmanager.SecretPayload(data=b"hello", data_crc32c=_crc(b"hello"))
    )
    assert version.client_specified_payload_checksum is True


async def test_wrong_client_checksum_is_invalid_argument(client: Client) -> None:
    secret = await _secret(client)
    with pytest.raises(gexc.InvalidArgument, match="data_crc32c"):
        await client.add_secret_version(
            parent=secret.name, payload=secretmanager.SecretPayload(data=b"hello", data_crc32c=_crc(b"other"))
        )
    versions = [v async for v in await client.list_secret_versions(parent=secret.name)]
    assert versions == []


async def test_payload_over_64_kib_is_invalid_argument(client: Client) -> None:
    secret = await _secret(client)
    await _add(client, secret.name, b"x" * 65536)
    with pytest.raises(gexc.InvalidArgument, match="payload"):
        await _add(client, secret.name, b"x" * 65537)


async def test_disable_enable_and_destroy_move_the_version_through_its_states(client: Client) -> None:
    secret = await _secret(client)
    version = await _add(client, secret.name, b"value")
    disabled = await client.disable_secret_version(name=version.name)
    assert disabled.state == State.DISABLED
    with pytest.raises(gexc.FailedPrecondition):
        await client.access_secret_version(name=version.name)
    enabled = await client.enable_secret_version(name=version.name)
    assert enabled.state == State.ENABLED
    assert (await client.access_secret_version(name=version.name)).payload.data == b"value"
    destroyed = await client.destroy_secret_version(name=version.name)
    assert destroyed.state == State.DESTROYED and destroyed.destroy_time is not None
    with pytest.raises(gexc.FailedPrecondition, match="DESTROYED"):
        await client.access_secret_version(name=version.name)
    with pytest.raises(gexc.FailedPrecondition):
        await client.enable_secret_version(name=version.name)


async def test_destroy_wipes_the_payload_from_the_store(
    client: Client, secret_service: SecretManagerService
) -> None:
    secret = await _secret(client)
    version = await _add(client, secret.name, b"wipe-me")
    await client.destroy_secret_version(name=version.name)
    stored = secret_service.store._secrets[secret.name].versions[0]
    assert stored.data is None and stored.crc32c is None


async def test_stale_version_etag_is_failed_precondition(client: Client) -> None:
    secret = await _secret(client)
    version = await _add(client, secret.name, b"v")
    await client.enable_secret_version(name=version.name)  # a no-op still changes the etag
    with pytest.raises(gexc.FailedPrecondition, match="etag"):
        await client.disable_secret_version(
            request=secretmanager.DisableSecretVersionRequest(name=version.name, etag=version.etag)
        )
    current = await client.get_secret_version(name=version.name)
    disabled = await client.disable_secret_version(
        request=secretmanager.DisableSecretVersionRequest(name=version.name, etag=current.etag)
    )
    assert disabled.state == State.DISABLED


async def test_list_versions_filters_on_state_newest_first(client: Client) -> None:
    secret = await _secret(client)
    for data in (b"1", b"2", b"3"):
        await _add(client, secret.name, data)
    await client.disable_secret_version(name=f"{secret.name}/versions/2")
    every = [v.name.rsplit("/", 1)[1] async for v in await client.list_secret_versions(parent=secret.name)]
    assert every == ["3", "2", "1"]
    enabled = [
        v.name.rsplit("/", 1)[1]
        async for v in await client.list_secret_versions(
            request=secretmanager.ListSecretVersionsRequest(parent=secret.name, filter="state:ENABLED")
        )
    ]
    assert enabled == ["3", "1"]
    with pytest.raises(gexc.InvalidArgument, match="filter"):
        await client.list_secret_versions(
            request=secretmanager.ListSecretVersionsRequest(parent=secret.name, filter="state:SLEEPY")
        )


async def test_list_secrets_pages_and_filters_by_label(client: Client) -> None:
    for index in range(5):
        await _secret(client, f"s{index}", kind="even" if index % 2 == 0 else "odd")
    pager = await client.list_secrets(request=secretmanager.ListSecretsRequest(parent=PARENT, page_size=2))
    names = [s.name async for s in pager]
    assert names == [f"{PARENT}/secrets/s{i}" for i in range(5)]
    even = [
        s.name
        async for s in await client.list_secrets(
            request=secretmanager.ListSecretsRequest(parent=PARENT, filter="labels.kind=even")
        )
    ]
    assert len(even) == 3


async def test_update_secret_applies_only_the_masked_fields_and_checks_the_etag(client: Client) -> None:
    secret = await _secret(client, a="1")
    updated = await client.update_secret(
        secret=secretmanager.Secret(name=secret.name, labels={"b": "2"}, annotations={"x": "y"}),
        update_mask=field_mask_pb2.FieldMask(paths=["labels"]),
    )
    assert updated.labels == {"b": "2"}
    assert dict(updated.annotations) == {}
    assert updated.etag != secret.etag
    with pytest.raises(gexc.FailedPrecondition):
        await client.update_secret(
            secret=secretmanager.Secret(name=secret.name, labels={}, etag=secret.etag),
            update_mask=field_mask_pb2.FieldMask(paths=["labels"]),
        )
    with pytest.raises(gexc.InvalidArgument, match="replication"):
        await client.update_secret(
            secret=secretmanager.Secret(name=secret.name),
            update_mask=field_mask_pb2.FieldMask(paths=["replication"]),
        )


async def test_delete_secret_checks_the_etag_and_removes_every_version(client: Client) -> None:
    secret = await _secret(client)
    await _add(client, secret.name, b"v")
    with pytest.raises(gexc.FailedPrecondition):
        await client.delete_secret(
            request=secretmanager.DeleteSecretRequest(name=secret.name, etag='"stale"')
        )
    await client.delete_secret(request=secretmanager.DeleteSecretRequest(name=secret.name, etag=secret.etag))
    with pytest.raises(gexc.NotFound):
        await client.access_secret_version(name=f"{secret.name}/versions/1")


async def test_regional_secrets_work_like_global_ones(client: Client) -> None:
    parent = "projects/local-project/locations/us-central1"
    secret = await client.create_secret(parent=parent, secret_id="regional", secret=secretmanager.Secret())
    await _add(client, secret.name, b"near")
    answer = await client.access_secret_version(name=f"{parent}/secrets/regional/versions/latest")
    assert answer.payload.data == b"near"
    assert answer.name == f"{parent}/secrets/regional/versions/1"


async def test_version_numbers_past_the_end_are_not_found(client: Client) -> None:
    secret = await _secret(client)
    await _add(client, secret.name, b"v")
    with pytest.raises(gexc.NotFound):
        await client.get_secret_version(name=f"{secret.name}/versions/2")
    with pytest.raises(gexc.InvalidArgument):
        await client.get_secret_version(name="not-a-name")


async def test_iam_policy_round_trips(client: Client) -> None:
    secret = await _secret(client)
    policy = policy_pb2.Policy(
        bindings=[
            policy_pb2.Binding(role="roles/secretmanager.secretAccessor", members=["user:a@example.com"])
        ]
    )
    stored = await client.set_iam_policy(
        request=iam_policy_pb2.SetIamPolicyRequest(resource=secret.name, policy=policy)
    )
    fetched = await client.get_iam_policy(request=iam_policy_pb2.GetIamPolicyRequest(resource=secret.name))
    assert list(fetched.bindings) == list(stored.bindings) == list(policy.bindings)
    allowed = await client.test_iam_permissions(
        request=iam_policy_pb2.TestIamPermissionsRequest(
            resource=secret.name, permissions=["secretmanager.versions.access", "pubsub.topics.publish"]
        )
    )
    assert list(allowed.permissions) == ["secretmanager.versions.access"]


async def test_synchronous_client_on_an_insecure_channel_works(secret_service: SecretManagerService) -> None:
    def round_trip() -> bytes:
        with grpc.insecure_channel(secret_service.address) as channel:
            sync = secretmanager.SecretManagerServiceClient(
                transport=SecretManagerServiceGrpcTransport(channel=channel)
            )
            secret = sync.create_secret(parent=PARENT, secret_id="sync", secret=secretmanager.Secret())
            sync.add_secret_version(parent=secret.name, payload=secretmanager.SecretPayload(data=b"s3cret"))
            return sync.access_secret_version(name=f"{secret.name}/versions/latest").payload.data

    assert await asyncio.to_thread(round_trip) == b"s3cret"


async def test_garbage_bytes_do_not_take_the_server_down(
    client: Client, secret_service: SecretManagerService
) -> None:
    channel = grpc.aio.insecure_channel(secret_service.address)
    call = channel.unary_unary(
        "/google.cloud.secretmanager.v1.SecretManagerService/AccessSecretVersion",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    with pytest.raises(grpc.aio.AioRpcError):
        await call(b"\xff\xfe\x00garbage")
    await channel.close()
    secret = await _secret(client, "still-alive")
    assert secret.name.endswith("still-alive")


async def test_version_alias_resolves_to_its_version(client: Client) -> None:
    secret = await _secret(client)
    await _add(client, secret.name, b"one")
    await _add(client, secret.name, b"two")
    await client.update_secret(
        secret=secretmanager.Secret(name=secret.name, version_aliases={"stable": 1}),
        update_mask=field_mask_pb2.FieldMask(paths=["version_aliases"]),
    )
    answer = await client.access_secret_version(name=f"{secret.name}/versions/stable")
    assert answer.payload.data == b"one"
    assert answer.name == f"{secret.name}/versions/1"


async def test_secret_with_a_ttl_is_deleted_when_it_expires() -> None:
    clock = ManualClock()
    config = LocalCloudConfig.from_env({"SECRET_MANAGER_EMULATOR_HOST": "127.0.0.1:0"})
    service = await start(Context(config=config, clock=clock, authority=TokenAuthority(key_size=1024)))
    channel = grpc.aio.insecure_channel(service.address)
    try:
        client = Client(transport=SecretManagerServiceGrpcAsyncIOTransport(channel=channel))
        secret = await client.create_secret(
            parent=PARENT,
            secret_id="short-lived",
            secret=secretmanager.Secret(ttl=duration_pb2.Duration(seconds=60)),
        )
        assert secret.expire_time.timestamp() == clock.now() + 60
        await clock.advance(59)
        assert (await client.get_secret(name=secret.name)).name == secret.name
        await clock.advance(1)
        with pytest.raises(gexc.NotFound):
            await client.get_secret(name=secret.name)
        assert [s async for s in await client.list_secrets(parent=PARENT)] == []
    finally:
        await channel.close()
        await service.stop()


async def test_secret_payloads_never_reach_the_request_log(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="localcloud.grpc")
    secret = await _secret(client)
    await _add(client, secret.name, b"hunter2-do-not-log")
    await client.access_secret_version(name=f"{secret.name}/versions/latest")
    assert "AddSecretVersion" in caplog.text or "redacted" in caplog.text
    assert "hunter2" not in caplog.text
