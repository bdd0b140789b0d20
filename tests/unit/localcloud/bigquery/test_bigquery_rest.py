"""The BigQuery emulator's REST surface over plain HTTP: datasets, tables, rows and Google's error shape."""

from __future__ import annotations

from typing import Any

from .conftest import PROJECT, Rest

SCHEMA = {
    "fields": [
        {"name": "data", "type": "STRING", "mode": "REQUIRED"},
        {"name": "count", "type": "INTEGER"},
        {"name": "at", "type": "TIMESTAMP"},
        {"name": "tags", "type": "STRING", "mode": "REPEATED"},
        {"name": "who", "type": "RECORD", "fields": [{"name": "name", "type": "STRING"}]},
    ]
}


async def _table(rest: Rest, dataset: str = "ds", table: str = "t", schema: Any = SCHEMA) -> None:
    status, _ = await rest.call("GET", f"/datasets/{dataset}")
    if status == 404:
        await rest.ok("POST", "/datasets", {"datasetReference": {"projectId": PROJECT, "datasetId": dataset}})
    body = {
        "tableReference": {"projectId": PROJECT, "datasetId": dataset, "tableId": table},
        "schema": schema,
    }
    await rest.ok("POST", f"/datasets/{dataset}/tables", body)


def _error(answer: Any) -> tuple[int, str, str]:
    error = answer["error"]
    assert error["errors"][0]["message"] == error["message"]
    return error["code"], error["errors"][0]["reason"], error["status"]


async def test_a_dataset_is_created_read_and_refused_twice(rest: Rest) -> None:
    body = {"datasetReference": {"projectId": PROJECT, "datasetId": "sales"}, "location": "EU"}
    created = await rest.ok("POST", "/datasets", {**body, "description": "d"})
    assert created["id"] == f"{PROJECT}:sales"
    assert created["datasetReference"] == {"projectId": PROJECT, "datasetId": "sales"}
    assert (created["location"], created["description"]) == ("EU", "d")
    assert (await rest.ok("GET", "/datasets/sales"))["id"] == f"{PROJECT}:sales"
    status, answer = await rest.call("POST", "/datasets", body)
    assert status == 409
    assert _error(answer) == (409, "duplicate", "ALREADY_EXISTS")
    assert answer["error"]["message"] == f"Already Exists: Dataset {PROJECT}:sales"


async def test_missing_things_are_404_not_found(rest: Rest) -> None:
    for path in ("/datasets/nope", "/datasets/nope/tables/t", "/datasets/nope/tables/t/data"):
        status, answer = await rest.call("GET", path)
        assert status == 404, path
        assert _error(answer) == (404, "notFound", "NOT_FOUND")
    assert (await rest.call("GET", "/datasets/nope"))[1]["error"][
        "message"
    ] == f"Not found: Dataset {PROJECT}:nope"
    await _table(rest)
    status, answer = await rest.call("DELETE", "/datasets/ds/tables/other")
    assert status == 404
    assert answer["error"]["message"] == f"Not found: Table {PROJECT}:ds.other"


async def test_bad_ids_and_schemas_are_400_invalid(rest: Rest) -> None:
    status, answer = await rest.call("POST", "/datasets", {"datasetReference": {"datasetId": "has-dash"}})
    assert status == 400 and _error(answer) == (400, "invalid", "INVALID_ARGUMENT")
    await _table(rest)
    for schema in (
        {"fields": [{"name": "a", "type": "NOPE"}]},
        {"fields": [{"name": "a", "type": "STRING"}, {"name": "A", "type": "INTEGER"}]},
        {"fields": [{"name": "1a", "type": "STRING"}]},
        {"fields": [{"name": "r", "type": "RECORD"}]},
        {"fields": [{"name": "a", "type": "STRING", "mode": "SOMETIMES"}]},
    ):
        body = {"tableReference": {"tableId": "bad"}, "schema": schema}
        status, answer = await rest.call("POST", "/datasets/ds/tables", body)
        assert status == 400, schema
        assert _error(answer)[1] == "invalid"


async def test_a_table_keeps_its_schema_and_is_listed(rest: Rest) -> None:
    await _table(rest, table="b")
    await _table(rest, table="a", schema={"fields": [{"name": "x", "type": "int64"}]})
    table = await rest.ok("GET", "/datasets/ds/tables/b")
    assert table["id"] == f"{PROJECT}:ds.b"
    assert table["tableReference"] == {"projectId": PROJECT, "datasetId": "ds", "tableId": "b"}
    assert table["schema"]["fields"][0] == {"name": "data", "type": "STRING", "mode": "REQUIRED"}
    assert table["schema"]["fields"][4]["fields"] == [{"name": "name", "type": "STRING"}]
    assert (table["type"], table["numRows"]) == ("TABLE", "0")
    listed = await rest.ok("GET", "/datasets/ds/tables")
    assert [t["tableReference"]["tableId"] for t in listed["tables"]] == ["a", "b"]
    first = await rest.ok("GET", "/datasets/ds/tables?maxResults=1")
    assert [t["tableReference"]["tableId"] for t in first["tables"]] == ["a"]
    second = await rest.ok("GET", f"/datasets/ds/tables?maxResults=1&pageToken={first['nextPageToken']}")
    assert [t["tableReference"]["tableId"] for t in second["tables"]] == ["b"]
    assert "nextPageToken" not in second
    status, answer = await rest.call("POST", "/datasets/ds/tables", {"tableReference": {"tableId": "a"}})
    assert status == 409 and answer["error"]["message"] == f"Already Exists: Table {PROJECT}:ds.a"
    await rest.ok("DELETE", "/datasets/ds/tables/a")
    assert (await rest.call("GET", "/datasets/ds/tables/a"))[0] == 404


async def test_a_dataset_with_tables_is_deleted_only_with_its_contents(rest: Rest) -> None:
    await _table(rest)
    status, answer = await rest.call("DELETE", "/datasets/ds")
    assert status == 400
    assert _error(answer) == (400, "resourceInUse", "INVALID_ARGUMENT")
    assert (await rest.call("DELETE", "/datasets/ds?deleteContents=true"))[0] == 204
    assert (await rest.call("GET", "/datasets/ds"))[0] == 404
    await _table(rest)  # the name is free again, the table new and empty
    assert (await rest.ok("GET", "/datasets/ds/tables/t"))["numRows"] == "0"


async def test_rows_inserted_are_listed_back_in_schema_order(rest: Rest) -> None:
    await _table(rest)
    rows = [
        {
            "json": {
                "data": "a",
                "count": 3,
                "at": "2024-01-02T03:04:05.5Z",
                "tags": ["x", "y"],
                "who": {"name": "n"},
            }
        },
        {"json": {"data": "b", "count": "-4", "at": 1704164645}},
    ]
    answer = await rest.ok("POST", "/datasets/ds/tables/t/insertAll", {"rows": rows})
    assert answer == {"kind": "bigquery#tableDataInsertAllResponse"}
    listed = await rest.ok("GET", "/datasets/ds/tables/t/data?formatOptions.useInt64Timestamp=true")
    assert listed["totalRows"] == "2"
    assert listed["rows"][0] == {
        "f": [
            {"v": "a"},
            {"v": "3"},
            {"v": "1704164645500000"},
            {"v": [{"v": "x"}, {"v": "y"}]},
            {"v": {"f": [{"v": "n"}]}},
        ]
    }
    assert listed["rows"][1]["f"] == [
        {"v": "b"},
        {"v": "-4"},
        {"v": "1704164645000000"},
        {"v": []},
        {"v": None},
    ]
    as_seconds = await rest.ok("GET", "/datasets/ds/tables/t/data?maxResults=1")
    assert float(as_seconds["rows"][0]["f"][2]["v"]) == 1704164645.5
    assert as_seconds["pageToken"] == "1"
    rest_of = await rest.ok("GET", "/datasets/ds/tables/t/data?pageToken=1")
    assert [r["f"][0]["v"] for r in rest_of["rows"]] == ["b"] and "pageToken" not in rest_of
    assert (await rest.ok("GET", "/datasets/ds/tables/t"))["numRows"] == "2"


async def test_one_invalid_row_fails_the_request_unless_skip_invalid_rows(rest: Rest) -> None:
    await _table(rest)
    rows = [
        {"json": {"data": "good"}},
        {"json": {"count": 1}},  # data is REQUIRED
        {"json": {"data": "x", "colour": "red"}},  # no such column
        {"json": {"data": "x", "count": "many"}},  # not an integer
    ]
    answer = await rest.ok("POST", "/datasets/ds/tables/t/insertAll", {"rows": rows})
    reasons = {
        e["index"]: (e["errors"][0]["reason"], e["errors"][0]["location"]) for e in answer["insertErrors"]
    }
    assert reasons == {
        0: ("stopped", ""),
        1: ("invalid", "data"),
        2: ("invalid", "colour"),
        3: ("invalid", "count"),
    }
    assert (await rest.ok("GET", "/datasets/ds/tables/t/data"))["totalRows"] == "0"
    body = {"rows": rows, "skipInvalidRows": True, "ignoreUnknownValues": True}
    answer = await rest.ok("POST", "/datasets/ds/tables/t/insertAll", body)
    assert sorted(e["index"] for e in answer["insertErrors"]) == [1, 3]
    listed = await rest.ok("GET", "/datasets/ds/tables/t/data")
    assert [r["f"][0]["v"] for r in listed["rows"]] == ["good", "x"]


async def test_an_insert_id_seen_before_is_not_inserted_again(rest: Rest) -> None:
    await _table(rest)
    body = {"rows": [{"insertId": "m1", "json": {"data": "once"}}]}
    await rest.ok("POST", "/datasets/ds/tables/t/insertAll", body)
    await rest.ok("POST", "/datasets/ds/tables/t/insertAll", body)
    assert (await rest.ok("GET", "/datasets/ds/tables/t/data"))["totalRows"] == "1"


async def test_an_empty_insert_and_an_unserved_method_are_refused(rest: Rest) -> None:
    await _table(rest)
    status, answer = await rest.call("POST", "/datasets/ds/tables/t/insertAll", {"rows": []})
    assert status == 400 and _error(answer)[1] == "invalid"
    status, answer = await rest.call("POST", "/queries", {"query": "SELECT 1"})
    assert status == 501 and _error(answer) == (501, "notImplemented", "UNIMPLEMENTED")
    calls = rest.service.state.calls
    assert calls["bigquery.tabledata.insertAll"] == 1 and calls["not served"] == 1
