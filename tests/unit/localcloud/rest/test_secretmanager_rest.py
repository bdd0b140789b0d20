"""Secret Manager's REST surface: the unmodified client with ``transport="rest"``."""

from __future__ import annotations

import pytest
import requests
from google.api_core import exceptions as gexc
from google.cloud import secretmanager

from localcloud._project import project_number
from tests.unit.localcloud.rest.conftest import RestCloud

PROJECT = "projects/rest-project"
AUTOMATIC = secretmanager.Secret(
    replication=secretmanager.Replication(automatic=secretmanager.Replication.Automatic())
)


def _client(rest_cloud: RestCloud) -> secretmanager.SecretManagerServiceClient:
    return secretmanager.SecretManagerServiceClient(**RestCloud.client_kwargs(rest_cloud.secretmanager))


def test_secret_versions_over_rest(rest_cloud: RestCloud) -> None:
    client = _client(rest_cloud)
    secret = client.create_secret(parent=PROJECT, secret_id="api-key", secret=AUTOMATIC)
    assert secret.name == f"{PROJECT}/secrets/api-key"
    first = client.add_secret_version(parent=secret.name, payload=secretmanager.SecretPayload(data=b"one"))
    second = client.add_secret_version(parent=secret.name, payload=secretmanager.SecretPayload(data=b"two"))
    assert first.state == secretmanager.SecretVersion.State.ENABLED

    latest = client.access_secret_version(name=f"{secret.name}/versions/latest")
    assert (latest.name, latest.payload.data) == (second.name, b"two")
    assert client.access_secret_version(name=first.name).payload.data == b"one"
    assert {v.name for v in client.list_secret_versions(parent=secret.name)} == {first.name, second.name}

    client.disable_secret_version(name=first.name)
    # FAILED_PRECONDITION travels as HTTP 400, which a REST client raises as BadRequest.
    with pytest.raises(gexc.BadRequest, match="DISABLED"):
        client.access_secret_version(name=first.name)
    enabled = client.list_secret_versions(request={"parent": secret.name, "filter": "state:ENABLED"})
    assert [v.name for v in enabled] == [second.name]


def test_a_missing_secret_is_a_404_with_googles_error_body(rest_cloud: RestCloud) -> None:
    with pytest.raises(gexc.NotFound):
        _client(rest_cloud).access_secret_version(name=f"{PROJECT}/secrets/absent/versions/latest")
    answer = requests.get(
        f"http://{rest_cloud.secretmanager}/v1/{PROJECT}/secrets/absent/versions/latest:access", timeout=30
    )
    assert answer.status_code == 404
    error = answer.json()["error"]
    assert (error["code"], error["status"]) == (404, "NOT_FOUND") and "absent" in error["message"]


def test_a_failed_precondition_is_http_400(rest_cloud: RestCloud) -> None:
    """https://cloud.google.com/apis/design/errors#handling_errors: FAILED_PRECONDITION is 400."""
    client = _client(rest_cloud)
    secret = client.create_secret(parent=PROJECT, secret_id="gone", secret=AUTOMATIC)
    version = client.add_secret_version(parent=secret.name, payload=secretmanager.SecretPayload(data=b"x"))
    client.destroy_secret_version(name=version.name)
    answer = requests.get(f"http://{rest_cloud.secretmanager}/v1/{version.name}:access", timeout=30)
    assert (answer.status_code, answer.json()["error"]["status"]) == (400, "FAILED_PRECONDITION")


def test_list_secrets_pages_by_the_query_string(rest_cloud: RestCloud) -> None:
    client = _client(rest_cloud)
    for name in ("paged-a", "paged-b", "paged-c"):
        client.create_secret(parent=PROJECT, secret_id=name, secret=AUTOMATIC)
    url = f"http://{rest_cloud.secretmanager}/v1/{PROJECT}/secrets"
    page = requests.get(url, params={"pageSize": "2", "filter": "name:paged-"}, timeout=30).json()
    assert len(page["secrets"]) == 2 and page["nextPageToken"] and page["totalSize"] == 3


def test_a_project_number_names_the_project_over_rest(rest_cloud: RestCloud) -> None:
    client = _client(rest_cloud)
    number = project_number(PROJECT.removeprefix("projects/"))
    secret = client.create_secret(parent=PROJECT, secret_id="by-number", secret=AUTOMATIC)
    client.add_secret_version(parent=secret.name, payload=secretmanager.SecretPayload(data=b"n"))
    answer = client.access_secret_version(name=f"projects/{number}/secrets/by-number/versions/1")
    assert (answer.name, answer.payload.data) == (f"projects/{number}/secrets/by-number/versions/1", b"n")
