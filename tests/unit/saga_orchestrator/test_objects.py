"""The start claims' Cloud Storage requests (``objects.ObjectStore``) against the Cloud Storage emulator,
read back with the unmodified google-cloud-storage client; and, against a scripted server, what is sent
to Google and how failures are retried or raised."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from google.api_core import exceptions as gexc
from saga_orchestrator.httpclient import HttpClient
from saga_orchestrator.objects import ObjectStore

from tests.support.http import RecordingHttpServer, ScriptedResponse
from tests.unit.localcloud.storage.running import RunningStorage

BUCKET = "shop-saga-starts"
NAME = "3fa9c1/order 42/ü?#%"  # a folder, a space, a non-ASCII letter and URL delimiters


@pytest.fixture(scope="module")
def storage() -> Iterator[RunningStorage]:
    running = RunningStorage()
    running.create_bucket(BUCKET)
    yield running
    running.close()


@pytest.fixture
def store(storage: RunningStorage) -> ObjectStore:
    return ObjectStore(HttpClient(), None, endpoint=storage.url)


def test_an_inserted_object_is_what_the_client_library_reads(storage, store):
    created = store.insert(
        BUCKET, NAME, {"token": "t1", "state": "claimed"}, if_generation_match=0, timeout=10
    )
    assert created.metageneration == 1 and created.generation > 0
    assert created.metadata == {"token": "t1", "state": "claimed"}
    blob = storage.client().bucket(BUCKET).get_blob(NAME)
    assert blob is not None
    assert (blob.generation, blob.metadata, blob.size, blob.content_type) == (
        created.generation,
        {"token": "t1", "state": "claimed"},
        0,
        "text/plain",
    )
    assert store.get(BUCKET, NAME, timeout=10) == created


def test_a_second_insert_fails_its_precondition(store):
    store.insert(BUCKET, "twice", {"token": "a"}, if_generation_match=0, timeout=10)
    with pytest.raises(gexc.PreconditionFailed):
        store.insert(BUCKET, "twice", {"token": "b"}, if_generation_match=0, timeout=10)
    assert store.get(BUCKET, "twice", timeout=10).metadata == {"token": "a"}


def test_a_patch_sets_the_keys_it_names_and_keeps_the_others_if_the_version_matches(store):
    first = store.insert(
        BUCKET, "patched", {"token": "a", "state": "claimed"}, if_generation_match=0, timeout=10
    )
    patched = store.patch_metadata(
        BUCKET,
        "patched",
        {"execution": "e1"},
        if_generation_match=first.generation,
        if_metageneration_match=first.metageneration,
        timeout=10,
    )
    assert patched.metadata == {"token": "a", "state": "claimed", "execution": "e1"}
    assert (patched.generation, patched.metageneration) == (first.generation, 2)
    with pytest.raises(gexc.PreconditionFailed):  # the version read before the patch
        store.patch_metadata(
            BUCKET,
            "patched",
            {"execution": "e2"},
            if_generation_match=first.generation,
            if_metageneration_match=first.metageneration,
            timeout=10,
        )


def test_a_delete_needs_the_current_version_and_a_missing_object_reads_as_none(store):
    first = store.insert(BUCKET, "deleted", {}, if_generation_match=0, timeout=10)
    with pytest.raises(gexc.PreconditionFailed):
        store.delete(
            BUCKET, "deleted", if_generation_match=first.generation + 1, if_metageneration_match=1, timeout=10
        )
    store.delete(
        BUCKET, "deleted", if_generation_match=first.generation, if_metageneration_match=1, timeout=10
    )
    assert store.get(BUCKET, "deleted", timeout=10) is None


def test_a_missing_bucket_raises_not_found_with_the_services_message(store):
    with pytest.raises(gexc.NotFound) as raised:
        store.insert("no-such-bucket", "x", {}, if_generation_match=0, timeout=10)
    assert "The specified bucket does not exist." in str(raised.value)


class Tokens:
    def id_token(self, audience: str) -> str:
        raise AssertionError("no ID token is asked for")

    def access_token(self) -> str:
        return "token-1"


def test_a_token_source_gives_each_request_a_bearer_token_and_a_transient_failure_is_retried():
    resource = json.dumps({"name": "x", "generation": "7", "metageneration": "1", "metadata": {"a": "b"}})
    with RecordingHttpServer() as server:
        path = "/storage/v1/b/bucket/o/x"
        server.script(path, 503, ScriptedResponse(body=resource.encode()))
        store = ObjectStore(HttpClient(), Tokens(), endpoint=server.url(""))
        found = store.get("bucket", "x", timeout=20)
        assert found is not None and found.generation == 7
        sent = server.requests_to(path)
    assert [r.method for r in sent] == ["GET", "GET"]
    assert all(r.headers.get("Authorization") == "Bearer token-1" for r in sent)


def test_without_a_token_source_no_token_is_sent_and_a_refusal_is_not_retried():
    with RecordingHttpServer() as server:
        path = "/storage/v1/b/bucket/o/x"
        server.script(
            path, ScriptedResponse(status=403, body=b'{"error": {"code": 403, "message": "denied"}}')
        )
        store = ObjectStore(HttpClient(), None, endpoint=server.url(""))
        with pytest.raises(gexc.Forbidden, match="denied"):
            store.get("bucket", "x", timeout=20)
        sent = server.requests_to(path)
    assert len(sent) == 1 and "Authorization" not in sent[0].headers


def test_an_attempt_that_hangs_is_retried_and_the_retry_learns_what_happened():
    # An insert whose answer never came: the retry (after the attempt's timeout) meets the precondition
    # the first attempt's write now fails, which the claims resolve by their token.
    with RecordingHttpServer() as server:
        path = "/upload/storage/v1/b/bucket/o"
        server.script(path, ScriptedResponse(delay_seconds=3.0), ScriptedResponse(status=412, body=b"{}"))
        store = ObjectStore(HttpClient(), None, endpoint=server.url(""))
        with pytest.raises(gexc.PreconditionFailed):
            store.insert("bucket", "x", {}, if_generation_match=0, timeout=1.0)
        assert len(server.requests_to(path)) == 2
