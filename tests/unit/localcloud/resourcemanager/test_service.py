"""The Resource Manager emulator (tag keys, tag values, tag bindings) through the real async gRPC clients."""

from __future__ import annotations

import re

import grpc
import pytest
from google.api_core import exceptions as gexc
from google.cloud import resourcemanager_v3, secretmanager
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
    SecretManagerServiceGrpcAsyncIOTransport,
)
from google.longrunning import operations_pb2

from localcloud._project import project_number
from tests.unit.localcloud.resourcemanager.conftest import TagClients

PROJECT = "projects/local-project"


async def _key(tags: TagClients, short_name: str = "env", parent: str = PROJECT) -> resourcemanager_v3.TagKey:
    operation = await tags.keys.create_tag_key(
        tag_key=resourcemanager_v3.TagKey(parent=parent, short_name=short_name)
    )
    return await operation.result()


async def _value(tags: TagClients, key: str, short_name: str = "prod") -> resourcemanager_v3.TagValue:
    operation = await tags.values.create_tag_value(
        tag_value=resourcemanager_v3.TagValue(parent=key, short_name=short_name)
    )
    return await operation.result()


async def test_created_key_and_value_have_generated_and_namespaced_names(tags: TagClients) -> None:
    operation = await tags.keys.create_tag_key(
        tag_key=resourcemanager_v3.TagKey(parent=PROJECT, short_name="env", description="where it runs")
    )
    assert operation.operation.done  # finished at once: result() does not poll
    assert isinstance(operation.metadata, resourcemanager_v3.CreateTagKeyMetadata)
    key = await operation.result()
    assert re.fullmatch(r"tagKeys/[0-9]+", key.name)
    assert (key.parent, key.namespaced_name, key.description) == (
        PROJECT,
        "local-project/env",
        "where it runs",
    )
    assert key.etag and key.create_time and key.update_time
    value = await _value(tags, key.name)
    assert re.fullmatch(r"tagValues/[0-9]+", value.name)
    assert (value.parent, value.namespaced_name) == (key.name, "local-project/env/prod")

    assert await tags.keys.get_tag_key(name=key.name) == key
    assert await tags.keys.get_namespaced_tag_key(name="local-project/env") == key
    assert await tags.values.get_tag_value(name=value.name) == value
    assert await tags.values.get_namespaced_tag_value(name="local-project/env/prod") == value


async def test_a_project_number_names_the_same_parent(tags: TagClients) -> None:
    number = project_number("local-project")
    key = await _key(tags, parent=f"projects/{number}")
    assert key.namespaced_name == "local-project/env"
    assert (await tags.keys.get_namespaced_tag_key(name=f"{number}/env")).name == key.name
    with pytest.raises(gexc.AlreadyExists):
        await _key(tags, parent=PROJECT)


async def test_list_keys_and_values_page_by_page(tags: TagClients) -> None:
    names = [(await _key(tags, f"key-{i}")).name for i in range(3)]
    await _key(tags, "elsewhere", parent="organizations/123")
    pager = await tags.keys.list_tag_keys(request={"parent": PROJECT, "page_size": 2})
    assert [k.name async for k in pager] == names
    first = await tags.keys.list_tag_keys(request={"parent": PROJECT, "page_size": 2})
    assert len(first.tag_keys) == 2 and first.next_page_token
    values = [(await _value(tags, names[0], f"v{i}")).name for i in range(2)]
    assert [v.name async for v in await tags.values.list_tag_values(parent=names[0])] == values
    assert [v.name async for v in await tags.values.list_tag_values(parent=names[1])] == []


async def test_a_duplicate_short_name_under_one_parent_is_already_exists(tags: TagClients) -> None:
    key = await _key(tags)
    with pytest.raises(gexc.AlreadyExists):
        await _key(tags)
    await _key(tags, parent="projects/other-project")  # another parent: another namespace
    await _value(tags, key.name)
    with pytest.raises(gexc.AlreadyExists):
        await _value(tags, key.name)
    other = await _key(tags, "tier")
    await _value(tags, other.name)  # the same value short name under another key


@pytest.mark.parametrize("short_name", ["", "-starts-with-dash", "ends.", "has space", "x" * 64, "slash/no"])
async def test_a_bad_short_name_is_invalid_argument(tags: TagClients, short_name: str) -> None:
    with pytest.raises(gexc.InvalidArgument, match="short_name"):
        await _key(tags, short_name)


async def test_good_short_names_are_accepted(tags: TagClients) -> None:
    for short_name in ("a", "A.b_c-9", "x" * 63):
        await _key(tags, short_name)


async def test_missing_keys_and_values(tags: TagClients) -> None:
    # Get: "This method will return PERMISSION_DENIED if the key does not exist" (the client's docstring).
    with pytest.raises(gexc.PermissionDenied):
        await tags.keys.get_tag_key(name="tagKeys/1")
    with pytest.raises(gexc.PermissionDenied):
        await tags.values.get_namespaced_tag_value(name="local-project/env/prod")
    with pytest.raises(gexc.NotFound):
        await (await tags.keys.delete_tag_key(name="tagKeys/1")).result()
    with pytest.raises(gexc.NotFound):
        await _value(tags, "tagKeys/1")
    with pytest.raises(gexc.InvalidArgument):
        await _key(tags, parent="folders/1")


async def test_a_key_with_values_cannot_be_deleted(tags: TagClients) -> None:
    key = await _key(tags)
    value = await _value(tags, key.name)
    with pytest.raises(gexc.FailedPrecondition, match="TagValues"):
        await tags.keys.delete_tag_key(name=key.name)
    deleted = await (await tags.values.delete_tag_value(name=value.name)).result()
    assert deleted.name == value.name
    operation = await tags.keys.delete_tag_key(name=key.name)
    assert isinstance(operation.metadata, resourcemanager_v3.DeleteTagKeyMetadata)
    assert (await operation.result()).name == key.name
    with pytest.raises(gexc.PermissionDenied):
        await tags.keys.get_tag_key(name=key.name)


async def test_update_changes_the_description_and_the_etag(tags: TagClients) -> None:
    key = await _key(tags)
    operation = await tags.keys.update_tag_key(
        tag_key=resourcemanager_v3.TagKey(name=key.name, description="new", etag=key.etag),
        update_mask={"paths": ["description"]},
    )
    updated = await operation.result()
    assert (updated.description, updated.short_name) == ("new", "env")
    assert updated.etag != key.etag
    with pytest.raises(gexc.Aborted):  # the etag of before the update
        await tags.keys.update_tag_key(
            tag_key=resourcemanager_v3.TagKey(name=key.name, description="x", etag=key.etag)
        )
    with pytest.raises(gexc.InvalidArgument, match="update_mask"):
        await tags.keys.update_tag_key(
            tag_key=resourcemanager_v3.TagKey(name=key.name, short_name="other"),
            update_mask={"paths": ["short_name"]},
        )
    with pytest.raises(gexc.Aborted):
        await tags.keys.delete_tag_key(request={"name": key.name, "etag": key.etag})


async def test_validate_only_changes_nothing(tags: TagClients) -> None:
    operation = await tags.keys.create_tag_key(
        request={"tag_key": {"parent": PROJECT, "short_name": "env"}, "validate_only": True}
    )
    assert (await operation.result()).namespaced_name == "local-project/env"
    assert [k async for k in await tags.keys.list_tag_keys(parent=PROJECT)] == []
    key = await _key(tags)
    await tags.keys.delete_tag_key(request={"name": key.name, "validate_only": True})
    assert await tags.keys.get_tag_key(name=key.name) == key


async def test_get_operation_answers_a_finished_operation(tags: TagClients) -> None:
    operation = await tags.keys.create_tag_key(
        tag_key=resourcemanager_v3.TagKey(parent=PROJECT, short_name="env")
    )
    name = operation.operation.name
    assert name.startswith("operations/")
    fetched = await tags.keys.get_operation(request=operations_pb2.GetOperationRequest(name=name))
    assert fetched.done and fetched.response.type_url.endswith("google.cloud.resourcemanager.v3.TagKey")
    with pytest.raises(gexc.NotFound):
        await tags.keys.get_operation(request=operations_pb2.GetOperationRequest(name="operations/none"))


async def test_a_value_bound_to_a_secret_is_deleted_once_the_secret_is(tags: TagClients) -> None:
    async with grpc.aio.insecure_channel(tags.secretmanager) as channel:
        secrets = secretmanager.SecretManagerServiceAsyncClient(
            transport=SecretManagerServiceGrpcAsyncIOTransport(channel=channel)
        )
        secret = await secrets.create_secret(parent=PROJECT, secret_id="bound", secret=secretmanager.Secret())
        value = await _value(tags, (await _key(tags)).name)
        parent = f"//secretmanager.googleapis.com/{secret.name}"
        operation = await tags.bindings.create_tag_binding(
            tag_binding=resourcemanager_v3.TagBinding(parent=parent, tag_value=value.name)
        )
        binding = await operation.result()
        assert (binding.parent, binding.tag_value) == (parent, value.name)
        assert binding.tag_value_namespaced_name == "local-project/env/prod"
        assert [b.name async for b in await tags.bindings.list_tag_bindings(parent=parent)] == [binding.name]
        with pytest.raises(gexc.FailedPrecondition, match="TagBindings"):
            await tags.values.delete_tag_value(name=value.name)
        await secrets.delete_secret(name=secret.name)  # Google removes the bindings of a deleted resource
        await (await tags.values.delete_tag_value(name=value.name)).result()


async def test_a_binding_can_be_deleted_by_its_name(tags: TagClients) -> None:
    value = await _value(tags, (await _key(tags)).name)
    parent = "//cloudresourcemanager.googleapis.com/projects/local-project"
    binding = await (
        await tags.bindings.create_tag_binding(
            tag_binding=resourcemanager_v3.TagBinding(
                parent=parent, tag_value_namespaced_name=value.namespaced_name
            )
        )
    ).result()
    assert binding.name.startswith("tagBindings/%2F%2Fcloudresourcemanager.googleapis.com%2Fprojects")
    with pytest.raises(gexc.AlreadyExists):
        await tags.bindings.create_tag_binding(
            tag_binding=resourcemanager_v3.TagBinding(parent=parent, tag_value=value.name)
        )
    with pytest.raises(gexc.FailedPrecondition):  # a project is not a resource the emulator can look up
        await tags.values.delete_tag_value(name=value.name)
    await (await tags.bindings.delete_tag_binding(name=binding.name)).result()
    assert [b async for b in await tags.bindings.list_tag_bindings(parent=parent)] == []
    await (await tags.values.delete_tag_value(name=value.name)).result()
