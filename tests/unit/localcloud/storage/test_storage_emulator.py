"""The Cloud Storage emulator driven by the unmodified google-cloud-storage client."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest
from google.api_core import exceptions as gexc
from google.cloud.storage import Bucket, Client
from saga_orchestrator.clients import ClientFactory

from localcloud._project import project_number
from localcloud.config import LocalCloudConfig
from localcloud.storage.state import crc32c_b64
from tests.unit.localcloud.storage.running import RunningStorage


def test_an_upload_with_if_generation_match_0_creates_the_object_once(bucket: Bucket) -> None:
    bucket.blob("a/claim").upload_from_string(b"first", if_generation_match=0)
    with pytest.raises(gexc.PreconditionFailed) as refused:
        bucket.blob("a/claim").upload_from_string(b"second", if_generation_match=0)
    assert refused.value.code == 412
    assert bucket.blob("a/claim").download_as_bytes(checksum="crc32c") == b"first"


def test_of_many_racing_creates_exactly_one_wins(bucket: Bucket) -> None:
    outcomes: list[str] = []
    start = threading.Barrier(40)

    def create(index: int) -> None:
        start.wait()
        try:
            bucket.blob("race").upload_from_string(str(index).encode(), if_generation_match=0)
            outcomes.append("created")
        except gexc.PreconditionFailed:
            outcomes.append("refused")

    threads = [threading.Thread(target=create, args=(i,)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["created"] + ["refused"] * 39


def test_uploads_get_growing_generations_and_patches_grow_the_metageneration(bucket: Bucket) -> None:
    blob = bucket.blob("doc")
    blob.upload_from_string(b"v1")
    first = blob.generation
    assert blob.metageneration == 1
    blob.metadata = {"owner": "a"}
    blob.patch(if_generation_match=first, if_metageneration_match=1)
    assert (blob.generation, blob.metageneration, blob.metadata) == (first, 2, {"owner": "a"})
    blob.upload_from_string(b"v2", if_generation_match=first)
    assert blob.generation > first and blob.metageneration == 1
    with pytest.raises(gexc.NotFound):  # only the live generation is kept (no versioning)
        bucket.blob("doc", generation=first).download_as_bytes()


def test_a_stale_generation_or_metageneration_is_a_precondition_failure(bucket: Bucket) -> None:
    blob = bucket.blob("cas")
    blob.upload_from_string(b"x", if_generation_match=0)
    generation = blob.generation
    stale = bucket.blob("cas")
    stale.metadata = {"state": "mine"}
    blob.metadata = {"state": "theirs"}
    blob.patch(if_metageneration_match=1)
    with pytest.raises(gexc.PreconditionFailed):
        stale.patch(if_generation_match=generation, if_metageneration_match=1)
    with pytest.raises(gexc.PreconditionFailed):
        stale.patch(if_generation_match=generation + 1)
    with pytest.raises(gexc.PreconditionFailed):  # a generation that is not live cannot be matched
        bucket.blob("cas").upload_from_string(b"y", if_generation_match=generation + 1)
    assert bucket.get_blob("cas").metadata == {"state": "theirs"}


def test_a_patch_merges_metadata_and_null_removes_a_key(bucket: Bucket) -> None:
    blob = bucket.blob("meta")
    blob.metadata = {"token": "t1", "state": "claimed"}
    blob.upload_from_string(b"")
    blob.metadata = {"state": None, "execution": "e-1"}
    blob.patch()
    assert bucket.get_blob("meta").metadata == {"token": "t1", "execution": "e-1"}


def test_reads_updates_and_deletes_of_a_missing_object_are_not_found(bucket: Bucket) -> None:
    assert bucket.get_blob("missing") is None
    with pytest.raises(gexc.NotFound):
        bucket.blob("missing").patch(if_metageneration_match=1)
    with pytest.raises(gexc.NotFound):
        bucket.blob("missing").delete(if_generation_match=0)
    with pytest.raises(gexc.PreconditionFailed):  # an upload that expects a live object
        bucket.blob("missing").upload_from_string(b"x", if_metageneration_match=1)


def test_a_conditional_delete_and_a_later_create_get_a_new_generation(bucket: Bucket) -> None:
    blob = bucket.blob("released")
    blob.upload_from_string(b"x", if_generation_match=0)
    gone = blob.generation
    with pytest.raises(gexc.PreconditionFailed):
        bucket.blob("released").delete(if_generation_match=gone + 1)
    bucket.blob("released").delete(if_generation_match=gone, if_metageneration_match=1)
    assert bucket.get_blob("released") is None
    again = bucket.blob("released")
    again.upload_from_string(b"y", if_generation_match=0)
    assert again.generation > gone


def test_a_read_whose_generation_did_not_change_is_not_modified(bucket: Bucket) -> None:
    blob = bucket.blob("cached")
    blob.upload_from_string(b"x")
    with pytest.raises(gexc.NotModified):
        bucket.blob("cached").reload(if_generation_not_match=blob.generation)
    with pytest.raises(gexc.PreconditionFailed):
        bucket.blob("cached").patch(if_metageneration_not_match=1)


def test_buckets_are_created_once_and_deleted_only_when_empty(client: Client) -> None:
    bucket = client.create_bucket("saga-starts", location="us-central1")
    assert (bucket.name, bucket.location) == ("saga-starts", "US-CENTRAL1")
    # Storage answers with the project's number: the one the whole local cloud gives the id.
    assert bucket.project_number == int(project_number(client.project))
    with pytest.raises(gexc.Conflict):
        client.create_bucket("saga-starts")
    with pytest.raises(gexc.BadRequest):
        client.create_bucket("Not_A_Bucket")
    with pytest.raises(gexc.NotFound):
        client.get_bucket("no-such-bucket")
    with pytest.raises(gexc.NotFound):
        client.bucket("no-such-bucket").blob("x").upload_from_string(b"x")
    bucket.blob("x").upload_from_string(b"x")
    with pytest.raises(gexc.Conflict):
        bucket.delete()
    bucket.blob("x").delete()
    bucket.delete()
    assert client.lookup_bucket("saga-starts") is None


def test_listing_pages_by_prefix_and_delimiter_and_is_counted(
    emulator: RunningStorage, client: Client, bucket: Bucket
) -> None:
    for name in ("a/1", "a/2", "a/3", "a/deep/4", "b/1"):
        bucket.blob(name).upload_from_string(b"")
    listed = client.list_blobs(bucket, prefix="a/", delimiter="/", max_results=10, page_size=2)
    names = [blob.name for blob in listed]
    assert names == ["a/1", "a/2", "a/3"]
    assert listed.prefixes == {"a/deep/"}
    with urllib.request.urlopen(f"{emulator.url}/admin/calls") as answer:
        calls = json.loads(answer.read())["calls"]
    assert calls["storage.objects.list"] == emulator.calls("storage.objects.list") >= 2
    assert calls["storage.objects.insert"] == 5


def test_a_media_upload_names_the_object_in_the_query_and_bad_hashes_are_refused(
    emulator: RunningStorage, bucket: Bucket
) -> None:
    url = f"{emulator.url}/upload/storage/v1/b/{bucket.name}/o?uploadType=media&name=raw%2Fone&ifGenerationMatch=0"
    request = urllib.request.Request(
        url, data=b"payload", method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request) as answer:
        created = json.loads(answer.read())
    assert (created["name"], created["size"], created["crc32c"]) == ("raw/one", "7", crc32c_b64(b"payload"))
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(url, data=b"x", method="POST"))
    assert refused.value.code == 412
    error = json.loads(refused.value.read())["error"]
    assert error["errors"][0]["reason"] == "conditionNotMet"
    blob = bucket.blob("bad-hash")
    blob.crc32c = crc32c_b64(b"something else")
    with pytest.raises(gexc.BadRequest, match="CRC32C"):
        blob.upload_from_string(b"payload", checksum=None)


def test_the_client_finds_the_emulator_through_storage_emulator_host(
    emulator: RunningStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.url)
    plain = Client()
    plain.create_bucket("found-by-env", project="test-project").blob("x").upload_from_string(b"1")
    bare = ClientFactory({"STORAGE_EMULATOR_HOST": emulator.service.address})
    try:
        assert bare.storage().bucket("found-by-env").blob("x").download_as_bytes() == b"1"
    finally:
        bare.close()


def test_the_local_cloud_hands_clients_a_url_and_binds_host_and_port() -> None:
    config = LocalCloudConfig.from_env({"STORAGE_EMULATOR_HOST": "http://127.0.0.1:9999"})
    assert config.storage == "127.0.0.1:9999"
    assert config.client_environment()["STORAGE_EMULATOR_HOST"] == "http://127.0.0.1:9999"
    assert LocalCloudConfig.from_env({}).storage == "127.0.0.1:8094"
