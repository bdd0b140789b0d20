"""Cloud Storage JSON API handlers, one per API method (``storage.buckets.insert`` → ``buckets_insert``),
over aiohttp; every rule lives in :mod:`localcloud.storage.state`.

What the wire looks like (https://cloud.google.com/storage/docs/json_api/v1, and what
``google-cloud-storage`` sends):

- ``POST /storage/v1/b?project=P`` with ``{"name": ...}`` creates a bucket; ``GET``/``DELETE
  /storage/v1/b/B`` read and delete it.
- ``POST /upload/storage/v1/b/B/o?uploadType=multipart`` carries a ``multipart/related`` body: a JSON
  part (the object's metadata, its ``name`` among them) then the data
  (https://cloud.google.com/storage/docs/uploading-objects#uploading-an-object, multipart upload);
  ``uploadType=media`` carries only the data and names the object with ``?name=``. Resumable uploads
  are not served (the client uses them only above 8 MiB or when asked to).
- ``GET /storage/v1/b/B/o/NAME`` is the object's metadata; with ``alt=media`` (also under
  ``/download/storage/v1/...``, the client's download URL) its data, with ``X-Goog-Hash``,
  ``X-Goog-Generation`` and ``X-Goog-Metageneration`` headers, the hashes being what the client checks.
- ``PATCH`` and ``DELETE`` on the same path update the metadata and delete the object;
  ``GET /storage/v1/b/B/o`` lists (``prefix``, ``delimiter``, ``maxResults``, ``pageToken``).
- Errors are ``{"error": {"code", "message", "errors": [{"domain", "reason", "message"}]}}``, which the
  client turns into ``google.api_core.exceptions`` (412 → ``PreconditionFailed``, 404 → ``NotFound``, …).
- The emulator checks no credentials (the client sends none when ``STORAGE_EMULATOR_HOST`` is set).
- ``GET /admin/calls`` (not a Google API) answers ``{"calls": {"storage.objects.insert": N, ...}}``.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from google.api_core import exceptions as gexc

from localcloud._webapp import json_body
from localcloud.storage.state import (
    DEFAULT_MAX_RESULTS,
    Preconditions,
    StorageState,
    StoredObject,
    crc32c_b64,
    md5_b64,
)

MAX_UPLOAD_BYTES = 64 * 1024 * 1024
REASONS = {400: "invalid", 401: "required", 403: "forbidden", 404: "notFound", 409: "conflict"}
REASONS |= {412: "conditionNotMet", 304: "notModified"}


def error_response(error: gexc.GoogleAPICallError) -> web.Response:
    code = int(error.code or 500)
    if code == 304:
        return web.Response(status=304)
    message = str(error.message)
    detail = {"domain": "global", "reason": REASONS.get(code, "backendError"), "message": message}
    body = {"error": {"code": code, "message": message, "errors": [detail]}}
    return web.json_response(body, status=code)


def _int(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise gexc.BadRequest(f"Invalid value for {name}: {raw!r}") from None


def preconditions(request: web.Request) -> Preconditions:
    return Preconditions(
        if_generation_match=_int(request, "ifGenerationMatch"),
        if_generation_not_match=_int(request, "ifGenerationNotMatch"),
        if_metageneration_match=_int(request, "ifMetagenerationMatch"),
        if_metageneration_not_match=_int(request, "ifMetagenerationNotMatch"),
    )


def split_multipart(body: bytes, content_type: str) -> tuple[dict[str, Any], bytes, str]:
    """A ``multipart/related`` upload → (metadata, data, the data part's content type)."""
    _, _, params = content_type.partition(";")
    boundary = ""
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip().strip('"')
    if not boundary:
        raise gexc.BadRequest("multipart upload without a boundary")
    parts = (b"\r\n" + body).split(b"\r\n--" + boundary.encode())
    sections = [p for p in parts[1:] if not p.startswith(b"--")]
    if len(sections) != 2:
        raise gexc.BadRequest(f"a multipart upload has 2 parts, got {len(sections)}")
    (_, meta_raw), (data_headers, data) = (_part(s) for s in sections)
    try:
        metadata = json.loads(meta_raw) if meta_raw.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise gexc.BadRequest("the metadata part of the upload is not JSON") from None
    return metadata, data, data_headers.get("content-type", "application/octet-stream")


def _part(section: bytes) -> tuple[dict[str, str], bytes]:
    head, sep, content = section.removeprefix(b"\r\n").partition(b"\r\n\r\n")
    if not sep:
        raise gexc.BadRequest("a multipart section has no header end")
    headers = {}
    for line in head.decode("latin-1").split("\r\n"):
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return headers, content


class StorageApi:
    def __init__(self, state: StorageState) -> None:
        self.state = state

    def base_url(self, request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"

    def _object(self, request: web.Request, stored: StoredObject) -> web.Response:
        return web.json_response(stored.resource(self.base_url(request)))

    async def buckets_insert(self, request: web.Request) -> web.StreamResponse:
        body = await json_body(request)
        project = request.query.get("project", "")
        bucket = self.state.insert_bucket(project, str(body.get("name", "")), str(body.get("location", "")))
        return web.json_response(bucket.resource(self.base_url(request)))

    async def buckets_get(self, request: web.Request) -> web.StreamResponse:
        bucket = self.state.bucket(request.match_info["bucket"])
        return web.json_response(bucket.resource(self.base_url(request)))

    async def buckets_delete(self, request: web.Request) -> web.StreamResponse:
        self.state.delete_bucket(request.match_info["bucket"])
        return web.Response(status=204)

    async def objects_insert(self, request: web.Request) -> web.StreamResponse:
        upload = request.query.get("uploadType", "")
        raw = await request.read()
        if upload == "multipart":
            resource, data, data_type = split_multipart(raw, request.headers.get("Content-Type", ""))
            resource.setdefault("contentType", data_type)
        elif upload == "media":
            resource = {"contentType": request.headers.get("Content-Type") or "application/octet-stream"}
            data = raw
        else:
            raise gexc.BadRequest(f"uploadType={upload!r} is not served here (multipart or media)")
        name = request.query.get("name") or str(resource.get("name") or "")
        bucket = request.match_info["bucket"]
        stored = self.state.insert_object(bucket, name, data, resource, preconditions(request))
        return self._object(request, stored)

    async def objects_get(self, request: web.Request) -> web.StreamResponse:
        stored = self.state.get_object(
            request.match_info["bucket"],
            request.match_info["object"],
            preconditions(request),
            _int(request, "generation"),
        )
        if request.query.get("alt") == "media" or request.path.startswith("/download/"):
            return media_response(stored)
        return self._object(request, stored)

    async def objects_patch(self, request: web.Request) -> web.StreamResponse:
        changes = await json_body(request)
        stored = self.state.patch_object(
            request.match_info["bucket"],
            request.match_info["object"],
            changes,
            preconditions(request),
            _int(request, "generation"),
        )
        return self._object(request, stored)

    async def objects_delete(self, request: web.Request) -> web.StreamResponse:
        self.state.delete_object(
            request.match_info["bucket"],
            request.match_info["object"],
            preconditions(request),
            _int(request, "generation"),
        )
        return web.Response(status=204)

    async def objects_list(self, request: web.Request) -> web.StreamResponse:
        items, prefixes, token = self.state.list_objects(
            request.match_info["bucket"],
            prefix=request.query.get("prefix", ""),
            delimiter=request.query.get("delimiter", ""),
            max_results=_int(request, "maxResults") or DEFAULT_MAX_RESULTS,
            page_token=request.query.get("pageToken", ""),
        )
        base = self.base_url(request)
        body: dict[str, Any] = {"kind": "storage#objects", "items": [o.resource(base) for o in items]}
        if prefixes:
            body["prefixes"] = prefixes
        if token:
            body["nextPageToken"] = token
        return web.json_response(body)


def media_response(stored: StoredObject) -> web.Response:
    headers = {
        "X-Goog-Hash": f"crc32c={crc32c_b64(stored.data)},md5={md5_b64(stored.data)}",
        "X-Goog-Generation": str(stored.generation),
        "X-Goog-Metageneration": str(stored.metageneration),
        "X-Goog-Stored-Content-Length": str(len(stored.data)),
        "ETag": stored.etag,
    }
    return web.Response(body=stored.data, headers=headers, content_type=stored.content_type)
