"""Callback endpoints over real HTTP, driven at the registry level (no workflow needed): authentication,
routing, FIFO buffering of early payloads, timeouts on the injected clock, and the callbacks list."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import requests
from aiohttp import web

from localcloud.auth import TokenAuthority
from localcloud.clock import ManualClock
from localcloud.workflows.lang.errors import WorkflowError
from localcloud.workflows.service.callbacks import CallbackRegistry
from localcloud.workflows.service.server import http_app

EXECUTION = "projects/p/locations/l/workflows/w/executions/e1"


class NoAdmin:
    def admin_execution(self, execution_id: str) -> dict[str, Any] | None:
        return {"executionId": execution_id, "state": "ACTIVE"} if execution_id == "e1" else None

    def admin_executions(self, state: str | None = None) -> list[dict[str, Any]]:
        return [{"executionId": "e1", "state": "ACTIVE"}]


@pytest.fixture
async def served() -> Any:
    clock = ManualClock()
    authority = TokenAuthority(clock, key_size=1024)
    registry = CallbackRegistry(clock=clock)
    runner = web.AppRunner(http_app(registry, authority, NoAdmin()), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    registry.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    registry.open_execution(EXECUTION)
    yield registry, authority, clock
    await runner.cleanup()


def bearer(
    authority: TokenAuthority, scopes: tuple[str, ...] = ("https://www.googleapis.com/auth/cloud-platform",)
) -> dict[str, str]:
    return {
        "Authorization": "Bearer "
        + authority.mint_access_token("caller@p.iam.gserviceaccount.com", scopes).token
    }


async def send(method: str, url: str, **kwargs: Any) -> requests.Response:
    return await asyncio.to_thread(requests.request, method, url, timeout=10, **kwargs)


async def test_callback_url_has_the_real_path_on_the_bound_address(served: Any) -> None:
    registry, _, _ = served
    callback = registry.create(EXECUTION, "POST")
    assert callback.url.startswith(registry.base_url + f"/v1/{EXECUTION}/callbacks/")


async def test_request_without_a_token_is_unauthenticated(served: Any) -> None:
    registry, _, _ = served
    callback = registry.create(EXECUTION, "POST")
    response = await send("POST", callback.url, json={"a": 1})
    assert response.status_code == 401
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"
    forged = await send("POST", callback.url, json={"a": 1}, headers={"Authorization": "Bearer ya29.forged"})
    assert forged.status_code == 401
    assert list(callback.payloads) == []


async def test_token_without_cloud_platform_scope_is_permission_denied(served: Any) -> None:
    registry, authority, _ = served
    callback = registry.create(EXECUTION, "POST")
    response = await send(
        "POST", callback.url, json={}, headers=bearer(authority, ("https://www.googleapis.com/auth/pubsub",))
    )
    assert response.status_code == 403
    assert response.json()["error"]["status"] == "PERMISSION_DENIED"


async def test_unknown_callback_and_wrong_method_are_refused(served: Any) -> None:
    registry, authority, _ = served
    callback = registry.create(EXECUTION, "PUT")
    unknown = await send("PUT", callback.url + "x", headers=bearer(authority))
    assert unknown.status_code == 404
    wrong = await send("POST", callback.url, headers=bearer(authority))
    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "PUT"
    assert list(callback.payloads) == []


async def test_payloads_sent_before_the_wait_are_kept_in_order(served: Any) -> None:
    registry, authority, _ = served
    callback = registry.create(EXECUTION, "POST")
    first = await send(
        "POST", callback.url + "?step=a&step=b", json={"n": 1}, headers={**bearer(authority), "X-Trace": "t1"}
    )
    second = await send(
        "POST", callback.url, data="plain text", headers={**bearer(authority), "Content-Type": "text/plain"}
    )
    assert (first.status_code, second.status_code) == (200, 200)

    listed = await send("GET", f"{registry.base_url}/v1/{EXECUTION}/callbacks", headers=bearer(authority))
    [entry] = listed.json()["callbacks"]
    assert entry["method"] == "POST"
    assert entry["waiters"] == "0"
    assert len(entry["availablePayloads"]) == 2

    got_first = await registry.wait(callback, 5)
    got_second = await registry.wait(callback, 5)
    assert got_first["type"] == "HTTP"
    request = got_first["http_request"]
    assert request["body"] == {"n": 1}
    assert request["method"] == "POST"
    assert request["query"] == {"step": ["a", "b"]}
    assert request["headers"]["X-Trace"] == "t1"
    assert "Authorization" not in request["headers"]  # a credential never reaches workflow variables
    assert request["url"].startswith(f"/v1/{EXECUTION}/callbacks/")
    assert got_first["received_time"].endswith("+0000 UTC")
    assert got_second["http_request"]["body"] == "plain text"


async def test_waiting_step_is_released_by_an_http_request(served: Any) -> None:
    registry, authority, _ = served
    callback = registry.create(EXECUTION, "POST")
    waiting = asyncio.ensure_future(registry.wait(callback, 60))
    for _ in range(100):
        if callback.waiters:
            break
        await asyncio.sleep(0)
    listed = await send("GET", f"{registry.base_url}/v1/{EXECUTION}/callbacks", headers=bearer(authority))
    assert listed.json()["callbacks"][0]["waiters"] == "1"
    response = await send("POST", callback.url, json={"status": "succeeded"}, headers=bearer(authority))
    assert response.status_code == 200
    received = await asyncio.wait_for(waiting, 5)
    assert received["http_request"]["body"] == {"status": "succeeded"}
    assert callback.waiters == 0


async def test_wait_times_out_on_the_injected_clock_and_a_later_payload_stays_queued(served: Any) -> None:
    registry, authority, clock = served
    callback = registry.create(EXECUTION, "POST")
    waiting = asyncio.ensure_future(registry.wait(callback, 30))
    for _ in range(100):
        if clock.pending_sleepers:
            break
        await asyncio.sleep(0)
    await clock.advance(29)
    assert not waiting.done()
    await clock.advance(1)
    with pytest.raises(WorkflowError) as raised:
        await asyncio.wait_for(waiting, 5)
    assert raised.value.tags == ["TimeoutError"]

    response = await send("POST", callback.url, json={"late": True}, headers=bearer(authority))
    assert response.status_code == 200
    again = await registry.wait(callback, 30)
    assert again["http_request"]["body"] == {"late": True}


async def test_callbacks_of_a_finished_execution_answer_404(served: Any) -> None:
    registry, authority, _ = served
    callback = registry.create(EXECUTION, "POST")
    registry.close_execution(EXECUTION)
    response = await send("POST", callback.url, json={}, headers=bearer(authority))
    assert response.status_code == 404
    assert response.json()["error"]["status"] == "NOT_FOUND"
    listed = await send("GET", f"{registry.base_url}/v1/{EXECUTION}/callbacks", headers=bearer(authority))
    assert listed.status_code == 404


async def test_admin_pages_answer_json(served: Any) -> None:
    registry, _, _ = served
    one = await send("GET", f"{registry.base_url}/admin/executions/e1")
    assert one.json() == {"executionId": "e1", "state": "ACTIVE"}
    missing = await send("GET", f"{registry.base_url}/admin/executions/nope")
    assert missing.status_code == 404
    listing = await send("GET", f"{registry.base_url}/admin/executions")
    assert json.loads(listing.text)["executions"][0]["executionId"] == "e1"


async def test_callbacks_list_pages_by_id_and_refuses_a_bad_page_size(served: Any) -> None:
    registry, authority, _ = served
    ids = sorted(registry.create(EXECUTION, "POST").id for _ in range(3))
    url = f"{registry.base_url}/v1/{EXECUTION}/callbacks"
    first = (await send("GET", url, params={"pageSize": 2}, headers=bearer(authority))).json()
    assert [c["name"].rsplit("/", 1)[1] for c in first["callbacks"]] == ids[:2]
    assert first["nextPageToken"] == ids[1]
    params = {"pageSize": 2, "pageToken": first["nextPageToken"]}
    last = (await send("GET", url, params=params, headers=bearer(authority))).json()
    assert [c["name"].rsplit("/", 1)[1] for c in last["callbacks"]] == ids[2:]
    assert "nextPageToken" not in last
    for bad in ("two", "-1"):
        refused = await send("GET", url, params={"pageSize": bad}, headers=bearer(authority))
        assert refused.status_code == 400
        assert refused.json()["error"]["status"] == "INVALID_ARGUMENT"
