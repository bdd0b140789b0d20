"""Secret Manager reads a project number in a name as the project's id, and answers a request that named
the project by number with the number (as Google's Secret Manager names projects in its answers)."""

from __future__ import annotations

import pytest
from google.api_core import exceptions as gexc
from google.cloud import secretmanager

from localcloud._project import project_number

PROJECT = "local-project"  # the configured project (LOCALCLOUD_PROJECT's default)
NUMBER = project_number(PROJECT)
AUTOMATIC = secretmanager.Secret(
    replication=secretmanager.Replication(automatic=secretmanager.Replication.Automatic())
)


async def test_a_secret_created_by_id_is_read_by_number(
    client: secretmanager.SecretManagerServiceAsyncClient,
) -> None:
    secret = await client.create_secret(parent=f"projects/{PROJECT}", secret_id="s", secret=AUTOMATIC)
    assert secret.name == f"projects/{PROJECT}/secrets/s"  # named by id: the answer keeps the id
    payload = secretmanager.SecretPayload(data=b"v1")
    await client.add_secret_version(parent=secret.name, payload=payload)

    answer = await client.access_secret_version(name=f"projects/{NUMBER}/secrets/s/versions/1")
    assert (answer.name, answer.payload.data) == (f"projects/{NUMBER}/secrets/s/versions/1", b"v1")
    got = await client.get_secret(name=f"projects/{NUMBER}/secrets/s")
    assert got.name == f"projects/{NUMBER}/secrets/s"
    listed = [s.name async for s in await client.list_secrets(parent=f"projects/{NUMBER}")]
    assert listed == [f"projects/{NUMBER}/secrets/s"]


async def test_a_secret_created_by_number_is_the_same_secret_by_id(
    client: secretmanager.SecretManagerServiceAsyncClient,
) -> None:
    created = await client.create_secret(parent=f"projects/{NUMBER}", secret_id="n", secret=AUTOMATIC)
    assert created.name == f"projects/{NUMBER}/secrets/n"
    version = await client.add_secret_version(
        parent=created.name, payload=secretmanager.SecretPayload(data=b"by number")
    )  # AddSecretVersion's request is redacted in the log; its parent is read all the same
    assert version.name == f"projects/{NUMBER}/secrets/n/versions/1"
    by_id = await client.access_secret_version(name=f"projects/{PROJECT}/secrets/n/versions/latest")
    assert (by_id.name, by_id.payload.data) == (f"projects/{PROJECT}/secrets/n/versions/1", b"by number")
    with pytest.raises(gexc.AlreadyExists):
        await client.create_secret(parent=f"projects/{PROJECT}", secret_id="n", secret=AUTOMATIC)


async def test_a_number_of_no_known_project_is_a_project_of_its_own(
    client: secretmanager.SecretManagerServiceAsyncClient,
) -> None:
    await client.create_secret(parent=f"projects/{PROJECT}", secret_id="o", secret=AUTOMATIC)
    with pytest.raises(gexc.NotFound):
        await client.get_secret(name="projects/999999999999/secrets/o")
