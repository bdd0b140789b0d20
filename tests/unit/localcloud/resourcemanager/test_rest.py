"""Resource Manager's REST surface (``cloudresourcemanager.googleapis.com/v3``): the unmodified clients with
``transport="rest"`` and plain HTTP requests, on an event loop in a thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import resourcemanager_v3

from localcloud.auth import TokenAuthority
from localcloud.config import LocalCloudConfig
from localcloud.resourcemanager import server
from localcloud.runtime import Context


@pytest.fixture(scope="module")
def rest_address() -> Iterator[str]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    config = LocalCloudConfig.from_env({"RESOURCE_MANAGER_EMULATOR_HOST": "127.0.0.1:0"})
    ctx = Context(config=config, authority=TokenAuthority(key_size=1024))
    service = asyncio.run_coroutine_threadsafe(server.start(ctx), loop).result(timeout=30)
    try:
        yield service.rest_address
    finally:
        asyncio.run_coroutine_threadsafe(service.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def _kwargs(address: str) -> dict[str, Any]:
    return {
        "transport": "rest",
        "client_options": {"api_endpoint": f"http://{address}"},
        "credentials": AnonymousCredentials(),
    }


def test_tag_keys_and_values_over_rest(rest_address: str) -> None:
    keys = resourcemanager_v3.TagKeysClient(**_kwargs(rest_address))
    values = resourcemanager_v3.TagValuesClient(**_kwargs(rest_address))
    key = keys.create_tag_key(
        tag_key=resourcemanager_v3.TagKey(parent="projects/rest-project", short_name="env")
    ).result()
    assert key.namespaced_name == "rest-project/env"
    value = values.create_tag_value(
        tag_value=resourcemanager_v3.TagValue(parent=key.name, short_name="prod")
    ).result()
    assert value.namespaced_name == "rest-project/env/prod"
    assert keys.get_tag_key(name=key.name) == key
    assert values.get_namespaced_tag_value(name="rest-project/env/prod") == value
    assert [k.name for k in keys.list_tag_keys(parent="projects/rest-project")] == [key.name]
    assert [v.name for v in values.list_tag_values(parent=key.name)] == [value.name]

    with pytest.raises(gexc.Conflict):  # ALREADY_EXISTS is HTTP 409
        keys.create_tag_key(
            tag_key=resourcemanager_v3.TagKey(parent="projects/rest-project", short_name="env")
        )
    # FAILED_PRECONDITION travels as HTTP 400, which a REST client raises as BadRequest.
    with pytest.raises(gexc.BadRequest, match="TagValues"):
        keys.delete_tag_key(name=key.name)
    assert values.delete_tag_value(name=value.name).result().name == value.name
    assert keys.delete_tag_key(name=key.name).result().name == key.name
    with pytest.raises(gexc.NotFound):
        keys.delete_tag_key(name=key.name)


def test_operations_and_errors_as_plain_http(rest_address: str) -> None:
    base = f"http://{rest_address}/v3"
    answer = requests.post(
        f"{base}/tagKeys", json={"parent": "projects/http-project", "shortName": "tier"}, timeout=30
    )
    assert answer.status_code == 200
    operation = answer.json()
    assert operation["done"] is True
    assert operation["metadata"]["@type"].endswith("google.cloud.resourcemanager.v3.CreateTagKeyMetadata")
    key = operation["response"]
    assert (key["@type"], key["namespacedName"]) == (
        "type.googleapis.com/google.cloud.resourcemanager.v3.TagKey",
        "http-project/tier",
    )
    again = requests.get(f"{base}/{operation['name']}", timeout=30).json()
    assert again["response"]["name"] == key["name"]
    listed = requests.get(f"{base}/tagKeys", params={"parent": "projects/http-project"}, timeout=30).json()
    assert [k["name"] for k in listed["tagKeys"]] == [key["name"]]
    namespaced = requests.get(f"{base}/tagKeys/namespaced", params={"name": "http-project/tier"}, timeout=30)
    assert namespaced.json()["name"] == key["name"]

    missing = requests.get(f"{base}/tagKeys/1", timeout=30)
    assert (missing.status_code, missing.json()["error"]["status"]) == (403, "PERMISSION_DENIED")
    orphan = requests.post(f"{base}/tagValues", json={"parent": "tagKeys/1", "shortName": "x"}, timeout=30)
    assert (orphan.status_code, orphan.json()["error"]["status"]) == (404, "NOT_FOUND")


def test_tag_bindings_over_rest(rest_address: str) -> None:
    keys = resourcemanager_v3.TagKeysClient(**_kwargs(rest_address))
    values = resourcemanager_v3.TagValuesClient(**_kwargs(rest_address))
    bindings = resourcemanager_v3.TagBindingsClient(**_kwargs(rest_address))
    key = keys.create_tag_key(
        tag_key=resourcemanager_v3.TagKey(parent="projects/bind-project", short_name="env")
    ).result()
    value = values.create_tag_value(
        tag_value=resourcemanager_v3.TagValue(parent=key.name, short_name="dev")
    ).result()
    parent = "//secretmanager.googleapis.com/projects/bind-project/secrets/s"
    binding = bindings.create_tag_binding(
        tag_binding=resourcemanager_v3.TagBinding(parent=parent, tag_value=value.name)
    ).result()
    assert (binding.parent, binding.tag_value) == (parent, value.name)
    assert [b.name for b in bindings.list_tag_bindings(parent=parent)] == [binding.name]
    bindings.delete_tag_binding(name=binding.name).result()
    assert list(bindings.list_tag_bindings(parent=parent)) == []
