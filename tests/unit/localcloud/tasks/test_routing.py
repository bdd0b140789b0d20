"""Queue-level routing as pure functions: a queue's http_target applied to a task's request."""

from __future__ import annotations

from typing import Any

import pytest
from google.cloud import tasks_v2

from localcloud.tasks import routing

Scheme = tasks_v2.UriOverride.Scheme
Mode = tasks_v2.UriOverride.UriOverrideEnforceMode


def _override(**fields: Any) -> Any:
    return tasks_v2.UriOverride.pb(tasks_v2.UriOverride(**fields))


@pytest.mark.parametrize(
    ("override", "url", "expected"),
    [
        # The http_queues samples: a host (and maybe scheme, port, path) for every task of the queue.
        ({"host": "example.com"}, "", "https://example.com"),
        ({"host": "example.com", "scheme": Scheme.HTTP, "port": 8080}, "", "http://example.com:8080"),
        (
            {"host": "example.com", "path_override": {"path": "/inbox"}},
            "/ignored?x=1",
            "https://example.com/inbox?x=1",
        ),
        ({"host": "example.com"}, "/own/path?x=1", "https://example.com/own/path?x=1"),
        # ALWAYS (and unspecified) replaces what the task has; port 0 clears, empty path/query clear.
        ({"host": "b.test", "port": 0}, "http://a.test:81/p?q=1", "http://b.test/p?q=1"),
        (
            {"path_override": {"path": ""}, "query_override": {"query_params": ""}},
            "https://a.test/p?q=1",
            "https://a.test",
        ),
        ({"query_override": {"query_params": "v=2"}}, "https://a.test/p?q=1", "https://a.test/p?v=2"),
        ({"scheme": Scheme.HTTPS}, "http://a.test/p", "https://a.test/p"),
        ({"path_override": {"path": "nested/path"}}, "https://a.test", "https://a.test/nested/path"),
        # IF_NOT_EXISTS fills only the parts the task's URL lacks.
        (
            {
                "host": "b.test",
                "port": 9,
                "path_override": {"path": "/queue"},
                "uri_override_enforce_mode": Mode.IF_NOT_EXISTS,
            },
            "http://a.test/task",
            "http://a.test:9/task",
        ),
        (
            {"host": "b.test", "scheme": Scheme.HTTP, "uri_override_enforce_mode": Mode.IF_NOT_EXISTS},
            "/task?x=1",
            "http://b.test/task?x=1",
        ),
    ],
)
def test_uri_override_rewrites_the_task_url_part_by_part(
    override: dict[str, Any], url: str, expected: str
) -> None:
    assert routing.routed_url(_override(**override), url) == expected


def _queue(**http_target: Any) -> Any:
    return tasks_v2.Queue.pb(tasks_v2.Queue(name="q", http_target=tasks_v2.HttpTarget(**http_target)))


def test_the_queue_method_headers_and_token_win_over_the_tasks_and_the_task_is_left_alone() -> None:
    queue = _queue(
        http_method=tasks_v2.HttpMethod.PUT,
        header_overrides=[{"header": {"key": "content-type", "value": "application/json"}}],
        oidc_token={"service_account_email": "queue@p.iam.gserviceaccount.com"},
    )
    task = tasks_v2.HttpRequest.pb(
        tasks_v2.HttpRequest(
            url="https://a.test/",
            body=b"{}",
            headers={"Content-Type": "text/plain", "X-Task": "1"},
            oauth_token={"service_account_email": "task@p.iam.gserviceaccount.com"},
        )
    )
    sent = routing.routed(queue, task)
    assert sent.http_method == tasks_v2.HttpMethod.PUT and sent.body == b"{}"
    assert dict(sent.headers) == {"content-type": "application/json", "X-Task": "1"}
    assert sent.WhichOneof("authorization_header") == "oidc_token"
    assert sent.oidc_token.service_account_email == "queue@p.iam.gserviceaccount.com"
    assert task.headers["Content-Type"] == "text/plain" and task.HasField("oauth_token")


def test_a_get_override_drops_the_body_and_a_queue_without_target_changes_nothing() -> None:
    task = tasks_v2.HttpRequest.pb(tasks_v2.HttpRequest(url="https://a.test/", body=b"payload"))
    assert routing.routed(_queue(http_method=tasks_v2.HttpMethod.GET), task).body == b""
    plain = tasks_v2.Queue.pb(tasks_v2.Queue(name="q"))
    assert routing.routed(plain, task) is task


def test_only_a_queue_that_names_a_host_accepts_tasks_without_a_full_url() -> None:
    routed_queue = _queue(uri_override={"host": "example.com"}).http_target
    assert routing.url_problem(routed_queue, "") is None
    assert routing.url_problem(routed_queue, "/path?x=1") is None
    assert routing.url_problem(routed_queue, "example.com/path") is not None
    no_host = _queue(uri_override={"path_override": {"path": "/p"}}).http_target
    assert "must begin with http://" in str(routing.url_problem(no_host, "/path"))


def test_http_target_problems_name_every_bad_field() -> None:
    target = _queue(
        uri_override={"host": "", "port": -1},
        header_overrides=[{"header": {"key": " ", "value": "v"}}],
        oidc_token={"audience": "x"},
    ).http_target
    assert routing.http_target_problems(target, "http_target") == [
        "http_target.uri_override.host must not be empty",
        "http_target.uri_override.port must be a positive integer (0 clears the port)",
        "http_target.header_overrides[0].header.key must not be empty",
        "http_target.oidc_token.service_account_email is required",
    ]
