"""Pages of the List methods, written once for every emulator.

Google's List methods (https://google.aip.dev/158) take ``page_size`` and ``page_token`` and answer
``next_page_token``, empty on the last page; a token is opaque to clients. Each API declares its rules in
one ``Paging`` value (sizes, error texts, whether tokens are base64) and picks, per method, one of two
kinds of token:

- **offset** (``offset_page``): the position of the next item, as a decimal ("25"). Secret Manager,
  Cloud Tasks and Pub/Sub use it everywhere; Workflows for revisions and for executions with ``orderBy``.
- **after key** (``after_key_page``): the key of the last item sent; the next page starts past it, so
  items added or removed between two pages shift nothing. Workflows uses it for workflows (the name),
  executions newest first (the sequence number) and callbacks (the id).

A token the API did not issue is INVALID_ARGUMENT, with the API's own message.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from google.api_core import exceptions as gexc

T = TypeVar("T")


@dataclass(frozen=True)
class Paging:
    default_size: int
    max_size: int | None = None  # None: no limit
    negative_size_error: str | None = None  # None: a negative page_size means the default size
    invalid_token_error: str = "invalid page_token {token!r}"  # formatted with the token
    base64_tokens: bool = False
    offsets_checked: bool = True  # an offset past the end (or negative) is a token never issued

    def size(self, requested: int) -> int:
        if requested < 0 and self.negative_size_error is not None:
            raise gexc.InvalidArgument(self.negative_size_error)
        size = requested if requested > 0 else self.default_size
        return size if self.max_size is None else min(size, self.max_size)

    def encode(self, value: str) -> str:
        return base64.urlsafe_b64encode(value.encode()).decode() if self.base64_tokens else value

    def decode(self, token: str, parse: Callable[[str], Any] = str) -> Any:
        """``parse`` of what ``token`` carries; a ``ValueError`` there means a token never issued."""
        try:
            value = base64.urlsafe_b64decode(token.encode()).decode() if self.base64_tokens else token
            return parse(value)
        except (ValueError, UnicodeDecodeError):
            raise gexc.InvalidArgument(self.invalid_token_error.format(token=token)) from None

    def offset_page(self, items: Sequence[T], page_size: int, page_token: str) -> tuple[Sequence[T], str]:
        size = self.size(page_size)
        start = self.decode(page_token, int) if page_token else 0
        if self.offsets_checked and not 0 <= start <= len(items):
            raise gexc.InvalidArgument(self.invalid_token_error.format(token=page_token))
        end = start + size
        return items[start:end], (self.encode(str(end)) if end < len(items) else "")

    def after_key_page(
        self,
        items: Sequence[T],
        page_size: int,
        page_token: str,
        key: Callable[[T], Any],
        *,
        parse: Callable[[str], Any] = str,
        descending: bool = False,
    ) -> tuple[Sequence[T], str]:
        """``items`` are in page order: ascending by ``key``, or descending if ``descending``."""
        size = self.size(page_size)
        start = 0
        if page_token:
            last = self.decode(page_token, parse)
            past = (lambda item: key(item) < last) if descending else (lambda item: key(item) > last)
            start = next((i for i, item in enumerate(items) if past(item)), len(items))
        page = items[start : start + size]
        more = len(items) - start > size
        return page, (self.encode(str(key(page[-1]))) if more else "")


# Secret Manager's and Cloud Tasks' rules: up to 25,000 items a page, offsets checked.
CHECKED_OFFSETS = Paging(
    default_size=25_000,
    max_size=25_000,
    negative_size_error="page_size: must not be negative",
    invalid_token_error="page_token: {token!r} is not a token this service issued",
)
