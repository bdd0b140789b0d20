"""Secret values for participant headers, read through the Secret Manager API.

Each value is checked against the CRC32C the service returns (``payload.data_crc32c``) and kept in
process for ``ttl_seconds`` (SAGA_SECRET_CACHE_SECONDS; 0 disables the cache), so a rotated ``latest``
version is picked up within that time. Values are never logged and never leave this process except as
the header they were asked for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from saga_orchestrator.errors import SecretAccessError
from saga_orchestrator.model import SecretRef

if TYPE_CHECKING:
    from google.cloud.secretmanager import SecretManagerServiceClient


class SecretReader:
    """Implements ``ports.SecretSource``; thread-safe. ``client`` gives the ``SecretManagerServiceClient``
    when a value must be read (a process that reads no secret never builds one); ``clock`` returns
    monotonic seconds."""

    def __init__(
        self,
        client: Callable[[], SecretManagerServiceClient],
        project_id: str,
        *,
        ttl_seconds: float = 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._project_id = project_id
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def get(self, ref: SecretRef) -> str:
        name = ref.resource_name(self._project_id)
        now = self._clock()
        with self._lock:
            cached = self._cache.get(name)
            if cached and cached[0] > now:
                return cached[1]
        value = self._access(name)
        if self._ttl > 0:
            with self._lock:
                self._cache[name] = (now + self._ttl, value)
        return value

    def _access(self, name: str) -> str:
        # Imported here: a process that reads no secret never loads the Google client libraries.
        import google_crc32c
        from google.api_core import exceptions as gexc

        # Errors that another try will not fix.
        permanent = (
            gexc.NotFound,
            gexc.PermissionDenied,
            gexc.InvalidArgument,
            gexc.FailedPrecondition,
            gexc.Unauthenticated,
        )
        try:
            response = self._client().access_secret_version(request={"name": name})
        except permanent as error:
            raise SecretAccessError(
                name, f"{type(error).__name__}: {error.message}", retryable=False
            ) from None
        except gexc.GoogleAPICallError as error:
            raise SecretAccessError(
                name, f"{type(error).__name__}: {error.message}", retryable=True
            ) from None
        except Exception as error:  # transport trouble (channel closed, DNS, ...)
            raise SecretAccessError(name, f"{type(error).__name__}", retryable=True) from None
        data: bytes = response.payload.data
        if "data_crc32c" in response.payload:
            checksum = google_crc32c.Checksum()
            checksum.update(data)
            if response.payload.data_crc32c != int(checksum.hexdigest(), 16):
                raise SecretAccessError(
                    name, "payload CRC32C mismatch (corrupted in transit)", retryable=True
                )
        try:
            value = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SecretAccessError(name, "value is not UTF-8 text", retryable=False) from None
        if "\n" in value or "\r" in value:
            raise SecretAccessError(
                name, "value contains a line break and cannot be a header", retryable=False
            )
        return value
