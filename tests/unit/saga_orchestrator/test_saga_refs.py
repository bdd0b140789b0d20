from __future__ import annotations

import pytest
from saga_orchestrator.errors import ReferenceResolutionError
from saga_orchestrator.refs import resolve, resolve_header

OUTPUTS = {
    "create_booking": {"booking_id": "b-1", "items": [{"sku": "x"}, {"sku": "y"}], "total": 12.5},
    "charge": "plain text output",
}


def test_refs_are_replaced_at_any_depth():
    payload = {
        "booking": {"$ref": "steps.create_booking.output.booking_id"},
        "skus": [{"$ref": "steps.create_booking.output.items.1.sku"}],
        "whole": {"$ref": "steps.create_booking.output"},
        "literal": {"keep": 1},
    }
    assert resolve(payload, OUTPUTS) == {
        "booking": "b-1",
        "skus": ["y"],
        "whole": OUTPUTS["create_booking"],
        "literal": {"keep": 1},
    }


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (
            "steps.refund.output.id",
            "step 'refund' has no output here (it has not succeeded before this call)",
        ),
        ("steps.create_booking.output.missing", "steps.create_booking.output has no key 'missing'"),
        (
            "steps.create_booking.output.items.5",
            "steps.create_booking.output.items is a list of 2; '5' is not an index in it",
        ),
        ("steps.charge.output.id", "steps.charge.output is str, not an object or list"),
        ("booking_id", "must look like steps.<name>.output[.<key>...]"),
    ],
)
def test_a_missing_path_is_a_clear_error(ref, message):
    with pytest.raises(ReferenceResolutionError) as caught:
        resolve({"x": {"$ref": ref}}, OUTPUTS)
    assert str(caught.value) == f"$ref {ref!r}: {message}"
    assert caught.value.ref == ref


def test_header_refs_become_strings():
    assert resolve_header({"$ref": "steps.create_booking.output.booking_id"}, OUTPUTS) == "b-1"
    assert resolve_header({"$ref": "steps.create_booking.output.total"}, OUTPUTS) == "12.5"
    with pytest.raises(ReferenceResolutionError, match="a header value must be a string"):
        resolve_header({"$ref": "steps.create_booking.output.items"}, OUTPUTS)


def test_a_ref_into_a_step_of_unknown_outcome_is_null_but_others_still_fail():
    payload = {"booking": {"$ref": "steps.book.output.booking_id"}}
    assert resolve(payload, {}, unknown=("book",)) == {"booking": None}
    with pytest.raises(ReferenceResolutionError):
        resolve({"x": {"$ref": "steps.other.output.id"}}, {}, unknown=("book",))
