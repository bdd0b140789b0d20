"""http.* against a real local aiohttp server."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest
from aiohttp import web

from localcloud.clock import ManualClock
from localcloud.workflows.engine.interpreter import run_execution
from localcloud.workflows.engine.loader import load_workflow
from localcloud.workflows.engine.metering import StepMeter
from localcloud.workflows.engine.standalone import StandaloneHost, run_on_manual_clock
from localcloud.workflows.lang.errors import WorkflowError


def recording_app(seen: list[dict[str, Any]], responses: list[web.Response] | None = None) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        seen.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": await request.read(),
            }
        )
        if responses:
            return responses.pop(0)
        return web.json_response({"ok": True, "n": [1, 2.5]}, headers={"X-Reply": "yes"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def run(source: str, argument: Any = None, host: StandaloneHost | None = None) -> Any:
    host = host or StandaloneHost(clock=ManualClock())
    clock = host.clock
    assert isinstance(clock, ManualClock)
    # Only retry backoff (seconds) is skipped; the 300 s request timeout never fires while a request is out.
    return await run_on_manual_clock(
        run_execution(load_workflow(source), argument, host), clock, max_jump=120
    )


GET_SOURCE = """\
main:
  params: [args]
  steps:
    - get:
        call: http.get
        args:
          url: ${args.url + "/items"}
          query:
            page: 2
            tag: ["a", "b"]
          headers:
            X-Custom: hello
        result: r
    - done:
        return: ${r}
"""


async def test_get_decodes_json_and_sends_query_and_headers(http_server: Any) -> None:
    seen: list[dict[str, Any]] = []
    base = await http_server(recording_app(seen))
    result = await run(GET_SOURCE, {"url": base})
    assert result["code"] == 200
    assert result["body"] == {"ok": True, "n": [1, 2.5]}
    assert result["headers"]["X-Reply"] == "yes"
    assert seen[0]["method"] == "GET"
    assert seen[0]["path"] == "/items"
    assert seen[0]["query"] == {"page": "2", "tag": "b"} or seen[0]["query"]["page"] == "2"
    assert seen[0]["headers"]["X-Custom"] == "hello"


POST_SOURCE = """\
main:
  params: [args]
  steps:
    - post:
        call: http.post
        args:
          url: ${args.url}
          body: ${args.body}
        result: r
    - done:
        return: ${r.code}
"""


async def test_post_body_is_json_encoded_with_a_json_content_type(http_server: Any) -> None:
    seen: list[dict[str, Any]] = []
    base = await http_server(recording_app(seen))
    assert await run(POST_SOURCE, {"url": base, "body": {"saga": "trip-1", "n": 1}}) == 200
    assert seen[0]["headers"]["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(seen[0]["body"]) == {"saga": "trip-1", "n": 1}


async def test_bytes_body_without_content_type_is_octet_stream(http_server: Any) -> None:
    seen: list[dict[str, Any]] = []
    base = await http_server(recording_app(seen))
    source = POST_SOURCE.replace("${args.body}", '${text.encode("raw")}')
    assert await run(source, {"url": base}) == 200
    assert seen[0]["headers"]["Content-Type"] == "application/octet-stream"
    assert seen[0]["body"] == b"raw"


async def test_status_404_raises_http_error_with_code_headers_and_body(http_server: Any) -> None:
    seen: list[dict[str, Any]] = []
    base = await http_server(recording_app(seen, [web.json_response({"error": "missing"}, status=404)]))
    with pytest.raises(WorkflowError) as raised:
        await run(POST_SOURCE, {"url": base, "body": None})
    payload = raised.value.payload
    assert payload["tags"] == ["HttpError"]
    assert payload["code"] == 404
    assert payload["body"] == {"error": "missing"}
    assert "404" in payload["message"]
    assert "Content-Type" in payload["headers"]


RETRY_SOURCE = """\
main:
  params: [args]
  steps:
    - call_it:
        try:
          call: http.get
          args:
            url: ${args.url}
          result: r
        retry: ${http.default_retry}
    - done:
        return: ${r.body}
"""


async def test_default_retry_retries_503_until_success(http_server: Any) -> None:
    seen: list[dict[str, Any]] = []
    replies = [web.Response(status=503), web.Response(status=503), web.Response(text="fine")]
    base = await http_server(recording_app(seen, replies))
    assert await run(RETRY_SOURCE, {"url": base}) == "fine"
    assert len(seen) == 3


async def test_default_retry_does_not_retry_500(http_server: Any) -> None:
    seen: list[dict[str, Any]] = []
    base = await http_server(recording_app(seen, [web.Response(status=500), web.Response(text="late")]))
    with pytest.raises(WorkflowError) as raised:
        await run(RETRY_SOURCE, {"url": base})
    assert raised.value.payload["code"] == 500
    assert len(seen) == 1


async def test_refused_connection_is_connection_failed_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(WorkflowError) as raised:
        await run(POST_SOURCE, {"url": f"http://127.0.0.1:{port}/", "body": None})
    assert raised.value.tags == ["ConnectionFailedError"]


async def test_a_slow_server_raises_timeout_error_on_the_host_clock(http_server: Any) -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="too late")

    app = web.Application()
    app.router.add_get("/{tail:.*}", slow)
    base = await http_server(app)
    source = GET_SOURCE.replace("query:", "timeout: 5\n          query:")
    clock = ManualClock()
    host = StandaloneHost(clock=clock)
    task = asyncio.ensure_future(run_execution(load_workflow(source), {"url": base + "/"}, host))
    try:
        for _ in range(400):
            if clock.pending_sleepers:
                break
            await asyncio.sleep(0.005)
        assert clock.next_deadline() == clock.now() + 5
        await clock.advance(5)
        with pytest.raises(WorkflowError) as raised:
            await asyncio.wait_for(task, 5)
        assert raised.value.tags == ["TimeoutError"]
    finally:
        release.set()


async def test_timeout_above_1800_seconds_is_a_value_error(http_server: Any) -> None:
    base = await http_server(recording_app([]))
    source = GET_SOURCE.replace("query:", "timeout: 1801\n          query:")
    with pytest.raises(WorkflowError) as raised:
        await run(source, {"url": base})
    assert raised.value.tags == ["ValueError"]


async def test_oidc_auth_sends_an_id_token_for_the_audience(http_server: Any) -> None:
    seen: list[dict[str, Any]] = []
    base = await http_server(recording_app(seen))
    source = POST_SOURCE.replace("body: ${args.body}", "auth:\n            type: OIDC")
    host = StandaloneHost(clock=ManualClock())
    await run(source, {"url": base + "/fn"}, host)
    header = seen[0]["headers"]["Authorization"]
    assert header.startswith("Bearer ")
    assert host.authority.check_access_token(header[7:]) is None  # an ID token, not an access token
    assert header.count(".") == 2


async def test_oauth2_auth_sends_an_access_token(http_server: Any) -> None:
    seen: list[dict[str, Any]] = []
    base = await http_server(recording_app(seen))
    source = POST_SOURCE.replace("body: ${args.body}", "auth:\n            type: OAuth2")
    host = StandaloneHost(clock=ManualClock())
    await run(source, {"url": base}, host)
    assert host.authority.check_authorization_header(seen[0]["headers"]["Authorization"]) is not None


async def test_calls_to_non_google_urls_are_external_steps_unless_the_host_says_internal(
    http_server: Any,
) -> None:
    base = await http_server(recording_app([]))
    program = load_workflow(POST_SOURCE)
    external_meter, internal_meter = StepMeter(), StepMeter()
    await run_execution(
        program, {"url": base, "body": 1}, StandaloneHost(clock=ManualClock()), meter=external_meter
    )
    inside = StandaloneHost(clock=ManualClock(), internal_url_prefixes=(base,))
    await run_execution(program, {"url": base, "body": 1}, inside, meter=internal_meter)
    assert (external_meter.internal, external_meter.external) == (1, 1)
    assert (internal_meter.internal, internal_meter.external) == (2, 0)


async def test_a_large_json_answer_sent_in_pieces_is_read_whole(http_server: Any) -> None:
    document = {"items": ["x" * 1000] * 300}  # about 300 KB, streamed in 64 KB pieces
    payload = json.dumps(document).encode()

    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = len(payload)
        await response.prepare(request)
        for start in range(0, len(payload), 65536):
            await response.write(payload[start : start + 65536])
            await asyncio.sleep(0)
        return response

    app = web.Application()
    app.router.add_get("/big", handle)
    base = await http_server(app)
    source = GET_SOURCE.replace('${args.url + "/items"}', '${args.url + "/big"}')
    result = await run(source, {"url": base})
    assert result["body"] == document
