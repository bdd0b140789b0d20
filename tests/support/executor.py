"""A step executor for tests that call real participants over HTTP: no secrets, a static token."""

from __future__ import annotations

from saga_orchestrator.executor import StepExecutor
from saga_orchestrator.httpclient import HttpClient
from saga_orchestrator.model import SecretRef
from saga_orchestrator.settings import Settings

from tests.contract.cloud import StaticTokenSource


class NoSecrets:
    def get(self, ref: SecretRef) -> str:
        raise AssertionError("no secret expected")


def plain_executor() -> StepExecutor:
    """The step executor with default settings, no secrets and a static token."""
    return StepExecutor(
        Settings.from_env({}), secrets=NoSecrets(), tokens=StaticTokenSource(), http=HttpClient()
    )
