"""The one paging helper every emulator's List methods use: offsets and after-key tokens, sizes, and
the INVALID_ARGUMENT of a token never issued, with each API's own rules."""

from __future__ import annotations

import pytest
from google.api_core import exceptions as gexc

from localcloud._paging import CHECKED_OFFSETS, Paging

LETTERS = list("abcdefg")
PUBSUB_LIKE = Paging(
    default_size=3, invalid_token_error="Invalid [page_token]: {token!r}", offsets_checked=False
)
WORKFLOWS_LIKE = Paging(
    default_size=2, max_size=3, negative_size_error="page_size must not be negative", base64_tokens=True
)


def walk_offsets(paging: Paging, items: list[str], page_size: int) -> list[list[str]]:
    pages, token = [], ""
    while True:
        page, token = paging.offset_page(items, page_size, token)
        pages.append(list(page))
        if not token:
            return pages


def test_offset_pages_give_every_item_once_in_order_and_the_last_page_has_no_token() -> None:
    assert walk_offsets(CHECKED_OFFSETS, LETTERS, 3) == [["a", "b", "c"], ["d", "e", "f"], ["g"]]
    assert walk_offsets(WORKFLOWS_LIKE, LETTERS, 0) == [["a", "b"], ["c", "d"], ["e", "f"], ["g"]]


def test_offset_tokens_are_the_decimal_offset_or_its_base64() -> None:
    assert CHECKED_OFFSETS.offset_page(LETTERS, 2, "")[1] == "2"
    assert WORKFLOWS_LIKE.offset_page(LETTERS, 2, "")[1] == "Mg=="


def test_a_page_that_ends_exactly_at_the_last_item_has_no_token() -> None:
    assert CHECKED_OFFSETS.offset_page(LETTERS, 7, "") == (LETTERS, "")
    assert CHECKED_OFFSETS.offset_page([], 7, "") == ([], "")


def test_zero_page_size_means_the_default_and_a_larger_one_is_capped_at_the_maximum() -> None:
    assert WORKFLOWS_LIKE.size(0) == 2
    assert WORKFLOWS_LIKE.size(50) == 3
    assert CHECKED_OFFSETS.size(0) == 25_000
    assert CHECKED_OFFSETS.size(100_000) == 25_000
    assert PUBSUB_LIKE.size(100_000) == 100_000  # Pub/Sub caps nothing


def test_negative_page_size_is_invalid_argument_with_the_apis_message() -> None:
    with pytest.raises(gexc.InvalidArgument, match="page_size: must not be negative"):
        CHECKED_OFFSETS.offset_page(LETTERS, -1, "")
    with pytest.raises(gexc.InvalidArgument, match="page_size must not be negative"):
        WORKFLOWS_LIKE.offset_page(LETTERS, -1, "")


def test_negative_page_size_means_the_default_where_the_api_accepts_it() -> None:
    assert PUBSUB_LIKE.offset_page(LETTERS, -5, "") == (["a", "b", "c"], "3")


@pytest.mark.parametrize("token", ["x", "-1", "8", "2.5"])
def test_a_token_never_issued_is_invalid_argument_when_offsets_are_checked(token: str) -> None:
    with pytest.raises(gexc.InvalidArgument, match="is not a token this service issued"):
        CHECKED_OFFSETS.offset_page(LETTERS, 2, token)


def test_unchecked_offsets_past_the_end_give_an_empty_last_page_but_words_are_refused() -> None:
    assert PUBSUB_LIKE.offset_page(LETTERS, 2, "99") == ([], "")
    with pytest.raises(gexc.InvalidArgument, match=r"Invalid \[page_token\]: 'x'"):
        PUBSUB_LIKE.offset_page(LETTERS, 2, "x")


@pytest.mark.parametrize("token", ["%%%", "eA==", "_w=="])  # not base64; "x"; not UTF-8
def test_a_base64_token_that_does_not_decode_to_an_offset_is_invalid_argument(token: str) -> None:
    with pytest.raises(gexc.InvalidArgument, match="invalid page_token"):
        WORKFLOWS_LIKE.offset_page(LETTERS, 2, token)


def test_after_key_pages_keep_their_place_when_items_arrive_or_leave_between_pages() -> None:
    first, token = CHECKED_OFFSETS.after_key_page(LETTERS, 3, "", str)
    assert (list(first), token) == (["a", "b", "c"], "c")
    changed = ["0", "b", "bb", "d", "e", "f", "g"]  # "a" and "c" gone, "0" and "bb" new
    second, token = CHECKED_OFFSETS.after_key_page(changed, 3, token, str)
    assert (list(second), token) == (["d", "e", "f"], "f")
    last, token = CHECKED_OFFSETS.after_key_page(changed, 3, token, str)
    assert (list(last), token) == (["g"], "")


def test_after_key_pages_run_newest_first_when_descending() -> None:
    newest_first = [9, 7, 4, 2, 1]
    first, token = WORKFLOWS_LIKE.after_key_page(newest_first, 2, "", int, parse=int, descending=True)
    assert list(first) == [9, 7] and WORKFLOWS_LIKE.decode(token) == "7"
    started_since = [12, 10, *newest_first]
    second, token = WORKFLOWS_LIKE.after_key_page(started_since, 2, token, int, parse=int, descending=True)
    assert list(second) == [4, 2] and token
    last, token = WORKFLOWS_LIKE.after_key_page(started_since, 2, token, int, parse=int, descending=True)
    assert (list(last), token) == ([1], "")


def test_an_after_key_token_that_does_not_parse_is_invalid_argument() -> None:
    token = WORKFLOWS_LIKE.encode("seven")
    with pytest.raises(gexc.InvalidArgument, match="invalid page_token"):
        WORKFLOWS_LIKE.after_key_page([3, 2, 1], 2, token, int, parse=int, descending=True)
