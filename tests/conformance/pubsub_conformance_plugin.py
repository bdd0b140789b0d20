"""pytest plugin that lets google-cloud-pubsub's own ``tests/system.py`` run against the local emulator.

- ``google.auth.default`` returns anonymous credentials and ``$PUBSUB_PROJECT_ID`` (the ``project``
  fixture calls it; there is no ADC here);
- the ``transport`` fixture, used by ``test_subscriber_not_leaking_open_sockets`` but never defined
  upstream, is ``"grpc"`` (the REST transport cannot take the emulator's gRPC channel; the script
  deselects the ``rest`` parametrisations).
"""

from __future__ import annotations

import os
from typing import Any

import google.auth
import pytest
from google.auth.credentials import AnonymousCredentials


def _anonymous_default(*args: Any, **kwargs: Any) -> tuple[AnonymousCredentials, str]:
    return AnonymousCredentials(), os.environ.get("PUBSUB_PROJECT_ID", "emulator-project")


def pytest_configure(config: pytest.Config) -> None:
    google.auth.default = _anonymous_default


@pytest.fixture
def transport() -> str:
    return "grpc"
