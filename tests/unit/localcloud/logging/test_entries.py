"""The Cloud Logging emulator through its REST API: entries written with ``entries.write`` come back from
``entries.list`` filtered, ordered and paged as Google documents, and what it does not implement is
refused with 400 INVALID_ARGUMENT naming it."""

from __future__ import annotations

from typing import Any

import pytest

from localcloud.clock import ManualClock
from localcloud.logging.state import LogStore
from tests.unit.localcloud.logging.conftest import AUTHORITY, PROJECT, LoggingApi, entry


def messages(answer: dict[str, Any]) -> list[Any]:
    return [e.get("jsonPayload", {}).get("message", e.get("textPayload")) for e in answer.get("entries", [])]


async def test_a_written_entry_is_listed_with_the_request_defaults_and_the_fields_the_api_supplies(
    api: LoggingApi, clock: ManualClock
) -> None:
    status, answer = await api.write(
        {"jsonPayload": {"message": "hello"}, "labels": {"step": "a", "saga_id": "own"}},
        logName=f"projects/{PROJECT}/logs/run.googleapis.com%2Fstdout",
        resource={"type": "cloud_run_revision", "labels": {"service_name": "s"}},
        labels={"saga_id": "default", "zone": "z1"},
    )
    assert (status, answer) == (200, {})
    status, answer = await api.list()
    assert status == 200
    (listed,) = answer["entries"]
    assert listed["logName"] == f"projects/{PROJECT}/logs/run.googleapis.com%2Fstdout"
    assert listed["resource"] == {"type": "cloud_run_revision", "labels": {"service_name": "s"}}
    # The request's labels fill in; the entry's own win.
    assert listed["labels"] == {"saga_id": "own", "zone": "z1", "step": "a"}
    assert listed["severity"] == "DEFAULT"
    assert listed["timestamp"] == listed["receiveTimestamp"] == "2026-01-01T00:00:00Z"
    assert listed["insertId"]
    assert "nextPageToken" not in answer


async def test_an_empty_result_has_no_entries_key(api: LoggingApi) -> None:
    assert await api.list() == (200, {})


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        ('labels.saga_id="s-1"', ["one", "two", "three"]),
        ('labels.saga_id="s-1" AND jsonPayload.attempt>=2', ["two", "three"]),
        ('labels.saga_id="s-1" jsonPayload.attempt>=2 jsonPayload.outcome="success"', ["three"]),
        ("jsonPayload.attempt<2", ["one", "other"]),
        ("jsonPayload.status_code!=500", ["three"]),
        ("severity>=WARNING", ["two", "other"]),
        ("severity=ERROR", ["other"]),
        ('jsonPayload.answer:"server ERROR"', ["one", "two"]),
        ("jsonPayload.answer:*", ["one", "two", "three"]),
        ('timestamp>="2026-01-01T00:00:02Z" AND timestamp<"2026-01-01T00:00:04Z"', ["two", "three"]),
        ('logName="projects/log-project/logs/other"', ["other"]),
        ('resource.type="cloud_run_revision" AND jsonPayload.outcome="transient"', ["one", "two"]),
        # An entry without the field matches no comparison, != included ("other" has no outcome).
        ('resource.labels.service_name="step-executor" AND jsonPayload.outcome!="success"', ["one", "two"]),
        ('labels."k8s-pod/app"="x"', ["other"]),
        ('textPayload:"plain"', ["plain line"]),
        ('labels.saga_id="nobody"', []),
    ],
)
async def test_filters_select_entries_by_labels_payload_severity_time_log_and_resource(
    api: LoggingApi, filter_text: str, expected: list[str]
) -> None:
    await api.write(
        entry({"message": "one", "attempt": 1, "outcome": "transient", "status_code": 500,
               "answer": "HTTP 500: Server error"}, labels={"saga_id": "s-1"},
              timestamp="2026-01-01T00:00:01Z", severity="INFO"),
        entry({"message": "two", "attempt": 2, "outcome": "transient", "status_code": 500,
               "answer": "HTTP 500: server error"}, labels={"saga_id": "s-1"},
              timestamp="2026-01-01T00:00:02Z", severity="WARNING"),
        entry({"message": "three", "attempt": 3, "outcome": "success", "status_code": 200, "answer": ""},
              labels={"saga_id": "s-1"}, timestamp="2026-01-01T00:00:03Z", severity="INFO"),
        {**entry({"message": "other", "attempt": 1}, labels={"k8s-pod/app": "x"},
                 timestamp="2026-01-01T00:00:04Z", severity=500),
         "logName": f"projects/{PROJECT}/logs/other"},
        entry("plain line", timestamp="2026-01-01T00:00:05Z"),
    )  # fmt: skip
    status, answer = await api.list(filter=filter_text)
    assert status == 200, answer
    assert messages(answer) == expected


async def test_entries_come_oldest_first_or_newest_first_and_equal_times_by_insert_id(
    api: LoggingApi,
) -> None:
    await api.write(
        entry({"message": "late"}, timestamp="2026-01-01T00:00:09Z"),
        entry({"message": "b"}, timestamp="2026-01-01T00:00:05Z", insertId="b"),
        entry({"message": "a"}, timestamp="2026-01-01T00:00:05Z", insertId="a"),
        entry({"message": "early"}, timestamp="2025-12-31T23:59:59.5Z"),
    )
    assert messages((await api.list())[1]) == ["early", "a", "b", "late"]
    assert messages((await api.list(orderBy="timestamp asc"))[1]) == ["early", "a", "b", "late"]
    assert messages((await api.list(orderBy="timestamp desc"))[1]) == ["late", "b", "a", "early"]


async def test_pages_follow_the_token_and_entries_written_between_pages_do_not_shift_them(
    api: LoggingApi,
) -> None:
    await api.write(*(entry({"message": f"m{i}"}, timestamp=f"2026-01-01T00:00:0{i}Z") for i in range(1, 6)))
    status, first = await api.list(pageSize=2)
    assert (status, messages(first)) == (200, ["m1", "m2"])
    # An older entry arrives between pages: it does not push m2 onto the next page again.
    await api.write(entry({"message": "m0"}, timestamp="2026-01-01T00:00:00Z"))
    _, second = await api.list(pageSize=2, pageToken=first["nextPageToken"])
    _, third = await api.list(pageSize=2, pageToken=second["nextPageToken"])
    assert (messages(second), messages(third)) == (["m3", "m4"], ["m5"])
    assert "nextPageToken" not in third
    _, newest = await api.list(pageSize=2, orderBy="timestamp desc")
    _, older = await api.list(pageSize=2, orderBy="timestamp desc", pageToken=newest["nextPageToken"])
    assert (messages(newest), messages(older)) == (["m5", "m4"], ["m3", "m2"])


async def test_the_default_page_is_50_entries(api: LoggingApi) -> None:
    await api.write(*(entry({"message": str(i)}) for i in range(60)))
    _, answer = await api.list()
    assert len(answer["entries"]) == 50 and answer["nextPageToken"]


@pytest.mark.parametrize(
    ("request_fields", "named"),
    [
        ({"filter": 'labels.a="1" OR labels.b="2"'}, "OR"),
        ({"filter": 'NOT labels.a="1"'}, "NOT"),
        ({"filter": '-labels.a="1"'}, "negation"),
        ({"filter": '(labels.a="1")'}, "parentheses"),
        ({"filter": 'jsonPayload.message=~"^a"'}, "'=~'"),
        ({"filter": 'SEARCH("hello")'}, "SEARCH()"),
        ({"filter": '"hello world"'}, "global restriction"),
        ({"filter": "httpRequest.status=500"}, "'httpRequest.status'"),
        ({"filter": "severity>=LOUD"}, "not a severity"),
        ({"filter": 'timestamp>="yesterday"'}, "RFC 3339"),
        ({"filter": "x" * 20_001}, "20000"),
        ({"filter": 'labels.a="1" AND AND labels.b="2"'}, "AND needs"),
        ({"filter": "labels.a="}, "value is missing"),
        ({"orderBy": "severity asc"}, "orderBy"),
        ({"pageSize": 1001}, "pageSize"),
        ({"pageSize": -1}, "pageSize"),
        ({"pageToken": "not-a-token"}, "page token"),
        ({"resourceNames": []}, "resourceNames"),
        ({"resourceNames": ["folders/123"]}, "folders/123"),
        (
            {"resourceNames": [f"projects/{PROJECT}/locations/global/buckets/_Default/views/_AllLogs"]},
            "views",
        ),
        ({"limit": 5}, 'Unknown name "limit"'),
    ],
)
async def test_what_the_emulator_does_not_support_is_refused_naming_it(
    api: LoggingApi, request_fields: dict[str, Any], named: str
) -> None:
    status, answer = await api.call("list", {"resourceNames": [f"projects/{PROJECT}"], **request_fields})
    assert status == 400
    assert answer["error"]["code"] == 400 and answer["error"]["status"] == "INVALID_ARGUMENT"
    assert named in answer["error"]["message"]


async def test_a_body_that_is_not_a_json_object_is_refused(api: LoggingApi) -> None:
    for body in (b"{not json", b"[1, 2]"):
        status, answer = await api.call("list", body)
        assert (status, answer["error"]["status"]) == (400, "INVALID_ARGUMENT")
        assert answer["error"]["message"].startswith("Invalid JSON payload received.")


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ({"logName": "logs/app"}, "logName"),
        ({"resource": {"labels": {}}}, "resource"),
        ({"textPayload": "both"}, "at most one"),
        ({"severity": "LOUD"}, "severity"),
        ({"timestamp": "yesterday"}, "RFC 3339"),
        ({"labels": {"n": 1}}, "labels"),
        ({"jsonPayload": {"big": "x" * 300_000}}, "larger than"),
    ],
)
async def test_a_bad_entry_fails_the_whole_write(api: LoggingApi, bad: dict[str, Any], named: str) -> None:
    good = entry({"message": "good"})
    status, answer = await api.write(good, {**entry({"message": "bad"}), **bad})
    assert (status, answer["error"]["status"]) == (400, "INVALID_ARGUMENT")
    assert "index 1" in answer["error"]["message"] and named in answer["error"]["message"]
    assert await api.list() == (200, {})


async def test_partial_success_writes_the_valid_entries_and_names_the_bad_ones_by_index(
    api: LoggingApi,
) -> None:
    status, answer = await api.write(
        {**entry({"message": "bad"}), "severity": "LOUD"}, entry({"message": "good"}), partialSuccess=True
    )
    assert status == 400
    (details,) = answer["error"]["details"]
    assert details["@type"] == "type.googleapis.com/google.logging.v2.WriteLogEntriesPartialErrors"
    assert list(details["logEntryErrors"]) == ["0"] and details["logEntryErrors"]["0"]["code"] == 3
    assert messages((await api.list())[1]) == ["good"]


async def test_a_dry_run_checks_and_writes_nothing(api: LoggingApi) -> None:
    assert await api.write(entry({"message": "x"}), dryRun=True) == (200, {})
    assert await api.list() == (200, {})
    status, _ = await api.write({"jsonPayload": {}}, dryRun=True)
    assert status == 400


async def test_a_write_without_entries_is_refused(api: LoggingApi) -> None:
    status, answer = await api.call("write", {"logName": f"projects/{PROJECT}/logs/app"})
    assert (status, answer["error"]["status"]) == (400, "INVALID_ARGUMENT")
    assert "entries" in answer["error"]["message"]


async def test_the_caller_needs_an_access_token_with_a_scope_that_allows_the_method(api: LoggingApi) -> None:
    status, answer = await api.call("list", {"resourceNames": [f"projects/{PROJECT}"]}, token="")
    assert (status, answer["error"]["status"]) == (401, "UNAUTHENTICATED")
    status, answer = await api.call("list", {"resourceNames": [f"projects/{PROJECT}"]}, token="forged")
    assert (status, answer["error"]["status"]) == (401, "UNAUTHENTICATED")
    reader = AUTHORITY.mint_access_token(scopes=("https://www.googleapis.com/auth/logging.read",)).token
    assert (await api.call("list", {"resourceNames": [f"projects/{PROJECT}"]}, token=reader))[0] == 200
    status, answer = await api.call("write", {"entries": [entry({"message": "x"})]}, token=reader)
    assert (status, answer["error"]["status"]) == (403, "PERMISSION_DENIED")
    other = AUTHORITY.mint_access_token(scopes=("https://www.googleapis.com/auth/userinfo.email",)).token
    assert (await api.call("list", {"resourceNames": [f"projects/{PROJECT}"]}, token=other))[0] == 403


async def test_another_projects_entries_are_not_listed(api: LoggingApi) -> None:
    await api.write({**entry({"message": "theirs"}), "logName": "projects/elsewhere/logs/app"})
    await api.write(entry({"message": "ours"}))
    assert messages((await api.list())[1]) == ["ours"]
    _, both = await api.call("list", {"resourceNames": [f"projects/{PROJECT}"], "projectIds": ["elsewhere"]})
    assert sorted(messages(both)) == ["ours", "theirs"]


async def test_entries_stamped_over_a_day_ahead_are_kept_but_not_listed(
    api: LoggingApi, clock: ManualClock
) -> None:
    await api.write(entry({"message": "future"}, timestamp="2026-01-02T00:00:01Z"), entry({"message": "now"}))
    assert messages((await api.list())[1]) == ["now"]
    await clock.advance(2)
    assert messages((await api.list())[1]) == ["now", "future"]


def test_the_store_keeps_at_most_its_bound_dropping_the_oldest_written() -> None:
    store = LogStore(ManualClock(), max_entries=3)
    store.write(
        {"entries": [entry({"message": str(i)}, timestamp=f"2026-01-01T00:00:0{i}Z") for i in range(5)]}
    )
    answer = store.list({"resourceNames": [f"projects/{PROJECT}"]})
    assert [e["jsonPayload"]["message"] for e in answer["entries"]] == ["2", "3", "4"]
    assert len(store) == 3
