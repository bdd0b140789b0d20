"""One real local stack for the whole e2e session: emulators, the three functions under
functions-framework and the trip-booking participants, each in its own process, on free ports.

Start-up costs a few seconds, so every e2e test shares it and tells its sagas apart by saga id; the
participants are never reset between tests (a test reads only the calls of its own sagas).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from saga_orchestrator.settings import Settings
from saga_orchestrator.workflows.saga_orchestrator import SagaOrchestrator

from devstack.settings import DeploymentSettings
from devstack.stack import LocalStack, missing_components
from tests.e2e.results import ResultListener

STUCK_SECONDS = 8


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    assert missing_components() == [], "the local stack is not complete in this checkout"
    log_dir: Path = tmp_path_factory.mktemp("e2e-logs")
    # A stuck saga waits this long for an operator here (deployment.env: a week).
    settings = DeploymentSettings.load().with_values({"SAGA_STUCK_DECISION_SECONDS": str(STUCK_SECONDS)})
    running = LocalStack.launch(settings=settings, log_dir=log_dir, ready_timeout=90.0)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def results(stack: LocalStack) -> Iterator[ResultListener]:
    """Every saga result of the session (see ``tests.e2e.results``); a test reads its own saga ids."""
    listener = ResultListener(stack)
    try:
        yield listener
    finally:
        listener.close()


@pytest.fixture(scope="session")
def orchestrator(stack: LocalStack) -> SagaOrchestrator:
    """The seed's Python API bound to the stack's emulators, with the functions' own settings."""
    return SagaOrchestrator(
        stack.settings.project_id,
        stack.settings.location,
        stack.settings.require("SAGA_WORKFLOW"),
        clients=stack.factory,
        settings=Settings.from_env(stack.function_environment()),
    )
