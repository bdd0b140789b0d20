"""The ``.proto`` reader behind Protocol Buffer schemas: what it accepts builds the class protoc would,
and what Pub/Sub refuses is refused with the line and column."""

from __future__ import annotations

import pytest
from google.protobuf import json_format

from localcloud.pubsub.proto_text import ProtoSyntaxError, compile_proto

ORDER = """
syntax = "proto3";
package shop.v1;  // a comment
option java_multiple_files = true;

/* the only top-level type */
message Order {
  string id = 1;
  optional int64 total_cents = 2;
  repeated Line lines = 3;
  map<string, Status> status_by_warehouse = 4;
  oneof payment { string card = 5; string voucher = 6; }
  Status status = 7 [deprecated = true];
  reserved 9 to 11, 15;
  reserved "legacy";

  enum Status { STATUS_UNSPECIFIED = 0; PAID = 1; SHIPPED = 2; }
  message Line { string sku = 1; uint32 quantity = 2; Status status = 3; bytes note = 4; }
}
"""


def test_a_proto3_message_with_nested_types_maps_oneofs_and_optional_builds() -> None:
    order_class = compile_proto(ORDER)
    assert order_class.DESCRIPTOR.full_name == "shop.v1.Order"
    order = json_format.Parse(
        '{"id": "o-1", "totalCents": "1200", "lines": [{"sku": "a", "quantity": 2, "status": "PAID"}],'
        ' "statusByWarehouse": {"west": "SHIPPED"}, "voucher": "V"}',
        order_class(),
    )
    assert order.HasField("total_cents") and order.WhichOneof("payment") == "voucher"
    assert order_class.FromString(order.SerializeToString()) == order
    assert not order_class().HasField("total_cents")  # proto3 optional tracks presence


def test_proto2_required_fields_and_defaults() -> None:
    cls = compile_proto(
        'syntax = "proto2"; message Ping { required string id = 1; optional int32 ttl = 2 [default = 30]; }'
    )
    assert cls().ttl == 30
    assert cls().FindInitializationErrors() == ["id"]


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ('syntax = "proto3"; import "other.proto"; message A {}', "import"),
        ('syntax = "proto3"; message A {} message B {}', "exactly one top-level message"),
        ('syntax = "proto3"; message A { Missing m = 1; }', "'Missing' is not defined"),
        ('syntax = "proto3"; message A { required string a = 1; }', "required fields are not allowed"),
        ('syntax = "proto3"; message A { string a = 1; string b = 1; }', "duplicate field number"),
        ('syntax = "proto3"; message A { string a = 10; reserved 10; }', "reserved"),
        ('syntax = "proto3"; message A { E e = 1; enum E { ONE = 1; } }', "must be zero"),
        ('syntax = "proto3";\nmessage A {\n  string a = 1\n}', "line 4, column 1"),
        ('syntax = "proto2"; message A { string a = 1; }', "expected a label"),
        ('syntax = "proto3"; service S {}', "'service' is not supported"),
    ],
)
def test_what_pubsub_refuses_is_refused_with_a_reason(source: str, reason: str) -> None:
    with pytest.raises((ProtoSyntaxError, ValueError), match=reason):
        compile_proto(source)
