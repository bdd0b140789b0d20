"""Start claims against the Cloud Storage emulator and the local Workflows engine: real objects, real
executions, and every Executions call the start path makes counted on its gRPC channel."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.api_core import exceptions as gexc
from google.cloud.workflows import executions_v1
from google.cloud.workflows.executions_v1.services.executions.transports import ExecutionsGrpcTransport
from saga_orchestrator.errors import SagaError
from saga_orchestrator.executions import WorkflowExecutions
from saga_orchestrator.httpclient import HttpClient
from saga_orchestrator.model import SagaRequest
from saga_orchestrator.objects import ObjectStore
from saga_orchestrator.settings import Settings
from saga_orchestrator.starts import TAKEOVER_SECONDS, StartClaims, StartInProgressError, object_name
from saga_orchestrator.validation import validate_request

from tests.contract.cloud import LocalCloud
from tests.unit.localcloud.storage.running import RunningStorage

WORKFLOW = "projects/shop/locations/us-central1/workflows/saga-orchestrator"
BUCKET = "shop-saga-starts"
STEPS = [{"name": "a", "execute_url": "http://localhost:1/a"}]


class CountingInterceptor(grpc.UnaryUnaryClientInterceptor):
    """Counts the RPCs a client sends, by method name (the Executions API sees every one of them)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        self.calls[details.method.rsplit("/", 1)[-1]] += 1
        return continuation(details, request)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


@pytest.fixture(scope="module")
def workflows() -> Iterator[LocalCloud]:
    cloud = LocalCloud(services=("WORKFLOWS_EMULATOR_HOST",))
    cloud.deploy_workflow(WORKFLOW)
    yield cloud
    cloud.close()


@pytest.fixture
def storage_emulator() -> Iterator[RunningStorage]:
    running = RunningStorage()
    running.create_bucket(BUCKET)
    yield running
    running.close()


@pytest.fixture
def counted(workflows: LocalCloud) -> Iterator[tuple[executions_v1.ExecutionsClient, CountingInterceptor]]:
    counter = CountingInterceptor()
    channel = grpc.intercept_channel(grpc.insecure_channel(workflows.env["WORKFLOWS_EMULATOR_HOST"]), counter)
    yield executions_v1.ExecutionsClient(transport=ExecutionsGrpcTransport(channel=channel)), counter
    channel.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def claims(storage_emulator: RunningStorage, clock: Clock) -> StartClaims:
    store = ObjectStore(HttpClient(), None, endpoint=storage_emulator.url)
    return StartClaims(lambda: store, BUCKET, clock=clock, sleep=clock.sleep)


@pytest.fixture
def executions(counted: Any, claims: StartClaims) -> WorkflowExecutions:
    client, _ = counted
    return WorkflowExecutions(lambda: client, WORKFLOW, claims=claims)


def request(saga_id: str) -> SagaRequest:
    return validate_request({"saga_id": saga_id, "steps": STEPS}, Settings.from_env({}))


def labelled(workflows: LocalCloud, saga_id: str) -> dict[str, str]:
    """Name → state of every execution labelled with ``saga_id``."""
    return {
        e.name: e.state.name for e in workflows.executions(WORKFLOW) if e.labels.get("saga_id") == saga_id
    }


def test_the_first_start_creates_and_records_the_execution_without_listing(
    executions, claims, counted, workflows
):
    _, counter = counted
    started = executions.start(request("s-1"))
    assert started.created
    assert labelled(workflows, "s-1") == {started.execution_name: "ACTIVE"}
    claim = claims.read("s-1")
    assert claim is not None and claim.execution == started.execution_name
    again = executions.start(request("s-1"))
    assert (again.execution_name, again.created) == (started.execution_name, False)
    assert counter.calls == Counter({"CreateExecution": 1})


def test_simultaneous_starts_create_one_execution_and_all_answer_with_it(executions, counted, workflows):
    _, counter = counted
    outcomes: list[Any] = []
    errors: list[BaseException] = []
    gate = threading.Barrier(30)

    def start() -> None:
        gate.wait()
        try:
            outcomes.append(executions.start(request("s-race")))
        except StartInProgressError as busy:  # a loser may outlast the winner's waits: retryable
            errors.append(busy)

    threads = [threading.Thread(target=start) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    [execution] = labelled(workflows, "s-race")
    assert [o.created for o in outcomes].count(True) == 1
    assert {o.execution_name for o in outcomes} == {execution}
    assert len(outcomes) + len(errors) == 30
    assert counter.calls["CreateExecution"] == 1 and counter.calls["ListExecutions"] == 0


def test_a_claim_in_progress_makes_a_later_start_wait_then_fail_retryably(
    executions, claims, clock, workflows
):
    assert claims._create("s-busy", "someone-else") is not None  # a winner between claim and execution
    with pytest.raises(StartInProgressError) as busy:
        executions.start(request("s-busy"))
    assert busy.value.saga_id == "s-busy" and busy.value.retryable
    assert clock.slept == [0.05, 0.1, 0.2, 0.4, 0.8]
    assert labelled(workflows, "s-busy") == {}


def test_a_claim_whose_winner_died_before_creating_is_taken_over_after_the_bound(
    executions, claims, clock, counted, workflows
):
    _, counter = counted
    claims._create("s-crashed", "dead-winner")
    clock.now += TAKEOVER_SECONDS - 1
    with pytest.raises(StartInProgressError):
        executions.start(request("s-crashed"))
    clock.now += 1
    started = executions.start(request("s-crashed"))
    assert started.created
    assert labelled(workflows, "s-crashed") == {started.execution_name: "ACTIVE"}
    claim = claims.read("s-crashed")
    assert claim is not None and claim.execution == started.execution_name and claim.token != "dead-winner"
    assert counter.calls["ListExecutions"] == 1  # the takeover looks before it creates, and only it


def test_a_winner_that_died_between_creating_and_recording_has_its_execution_adopted(
    executions, claims, clock, workflows
):
    claims._create("s-half", "dead-winner")
    orphan = executions._create_execution(request("s-half"))  # it created, then died
    clock.now += TAKEOVER_SECONDS
    adopted = executions.start(request("s-half"))
    assert (adopted.execution_name, adopted.created) == (orphan, False)
    assert labelled(workflows, "s-half") == {orphan: "ACTIVE"}
    assert claims.read("s-half").execution == orphan


def test_a_takeover_whose_answer_was_lost_still_looks_for_the_dead_winners_execution(
    storage_emulator, counted, clock, workflows
):
    class LosesOneAnswer:
        """The object store, but the first metadata patch's answer is lost once the change is made: the
        retried request then fails its precondition, as it does against Cloud Storage."""

        def __init__(self, store: ObjectStore) -> None:
            self.store, self.lost = store, False

        def __getattr__(self, name: str) -> Any:
            return getattr(self.store, name)

        def patch_metadata(self, *args: Any, **kwargs: Any) -> Any:
            changed = self.store.patch_metadata(*args, **kwargs)
            if self.lost:
                return changed
            self.lost = True
            return self.store.patch_metadata(*args, **kwargs)  # raises PreconditionFailed

    store = LosesOneAnswer(ObjectStore(HttpClient(), None, endpoint=storage_emulator.url))
    lossy = StartClaims(lambda: store, BUCKET, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type, return-value]
    client, _ = counted
    executions = WorkflowExecutions(lambda: client, WORKFLOW, claims=lossy)
    lossy._create("s-lost", "dead-winner")
    orphan = executions._create_execution(request("s-lost"))  # it created, then died
    clock.now += TAKEOVER_SECONDS
    adopted = executions.start(request("s-lost"))
    assert store.lost and (adopted.execution_name, adopted.created) == (orphan, False)
    assert labelled(workflows, "s-lost") == {orphan: "ACTIVE"}


def test_a_stalled_winner_that_records_second_cancels_its_own_execution(executions, claims, clock, workflows):
    late: list[Any] = []

    class Stalled:
        """The first winner's create: it takes longer than the bound, and meanwhile a redelivery runs."""

        def create(self) -> str:
            clock.now += TAKEOVER_SECONDS
            late.append(executions.start(request("s-stall")))
            return executions._create_execution(request("s-stall"))

        def existing(self) -> str | None:
            return None

        def cancel(self, execution_name: str) -> None:
            executions._cancel_own(execution_name)

    outcome = claims.start("s-stall", Stalled())
    [redelivered] = late
    assert redelivered.created
    assert (outcome.execution_name, outcome.created) == (redelivered.execution_name, False)
    states = labelled(workflows, "s-stall")
    assert sorted(states.values()) == ["ACTIVE", "CANCELLED"]
    assert states[redelivered.execution_name] == "ACTIVE"


def test_a_start_that_workflows_refused_releases_the_claim(claims, storage_emulator, counted):
    client, _ = counted
    missing = WorkflowExecutions(
        lambda: client, WORKFLOW.replace("saga-orchestrator", "not-deployed"), claims=claims
    )
    with pytest.raises(gexc.NotFound):
        missing.start(request("s-refused"))
    assert claims.read("s-refused") is None
    assert storage_emulator.calls("storage.objects.delete") == 1


def test_a_start_whose_outcome_is_unknown_abandons_the_claim_for_an_immediate_takeover(
    executions, claims, workflows
):
    class TimedOut:
        def create(self) -> str:
            raise gexc.DeadlineExceeded("the answer was lost")

        def existing(self) -> str | None:
            raise AssertionError("a first start never lists")

        def cancel(self, execution_name: str) -> None:
            raise AssertionError("nothing to cancel")

    with pytest.raises(gexc.DeadlineExceeded):
        claims.start("s-unknown", TimedOut())
    assert claims.read("s-unknown").state == "abandoned"
    started = executions.start(request("s-unknown"))
    assert started.created and labelled(workflows, "s-unknown") == {started.execution_name: "ACTIVE"}


def test_claims_are_spread_over_hashed_prefixes_and_named_after_the_saga():
    names = {object_name(f"order-{n}") for n in range(100)}
    assert all(name.endswith(f"/order-{name.rsplit('-', 1)[1]}") for name in names)
    assert len({name.split("/", 1)[0][:2] for name in names}) > 50


def test_a_missing_claims_bucket_is_named_in_the_error(storage_emulator, counted, workflows):
    store = ObjectStore(HttpClient(), None, endpoint=storage_emulator.url)
    executions_client, counter = counted
    missing = StartClaims(lambda: store, "no-such-bucket")
    executions = WorkflowExecutions(lambda: executions_client, WORKFLOW, claims=missing)
    with pytest.raises(SagaError, match="the start claims bucket 'no-such-bucket' does not exist"):
        executions.start(request("s-nobucket"))
    assert counter.calls == Counter() and labelled(workflows, "s-nobucket") == {}
