"""The project's saga workflow, deployed and run on the engine with the real Cloud Tasks emulator: each
step's Cloud Task reaches a stand-in step executor, which answers through the callback URL with an
OAuth2 access token; the workflow posts the saga result to a stand-in completion endpoint."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import pathlib
from typing import Any

import aiohttp
import grpc
import pytest
import requests
from aiohttp import web
from google.api_core.exceptions import AlreadyExists
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport
from google.protobuf import struct_pb2
from saga_orchestrator.executor import Settled, StepTask
from saga_orchestrator.forward import Forward, is_forward_run
from saga_orchestrator.result import merge_outputs
from saga_orchestrator.settings import Settings

from localcloud.tasks.faults import fault_client

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("localcloud.workflows.engine.interpreter") is None
    or importlib.util.find_spec("localcloud.tasks") is None,
    reason="needs the Workflows interpreter and the Cloud Tasks emulator",
)

SAGA_YAML = pathlib.Path(__file__).resolve().parents[5] / "workflows" / "saga_orchestrator.yaml"
QUEUE = "projects/local-project/locations/us-central1/queues/saga-tasks"


class StandIns:
    """A step executor that reports ``outcomes[step_name]`` for each task (a list: one per task, the last
    one repeated), and a completion endpoint that answers each stuck or parked notice with the next of
    ``decisions`` (an operator's verb sent to the saga's callback endpoint), if any is left."""

    def __init__(
        self,
        engine: Any,
        outcomes: dict[str, dict[str, Any]],
        *,
        duplicates: bool = False,
        brief: bool = False,
        direct: bool = False,
    ) -> None:
        self.engine = engine
        self.outcomes = outcomes
        # The forward run's first attempts settle as planned too (else it starts none, as with
        # SAGA_DIRECT_RUN_SECONDS=0); ``forward_status``: answer the forward run with this HTTP status
        # instead (a run that broke).
        self.direct = direct
        self.forward_status: int | None = None
        self.backward_status: int | None = None
        self.attempted: list[tuple[str, str]] = []  # the first attempts made by forward runs
        # Like Cloud Tasks delivering twice: every answer is sent again after the next action's answer
        # would be awaited, and the previous action's answer once more before the current one.
        self.duplicates = duplicates
        # The completion answers only the result's status (the engine reads large answers partially).
        self.brief = brief
        self.previous: dict[str, Any] | None = None
        self.tasks: list[dict[str, Any]] = []
        self.completions: list[dict[str, Any]] = []
        self.completion_bodies: list[dict[str, Any]] = []
        self.notices: list[dict[str, Any]] = []
        self.decisions: list[Any] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/step", self.step)
        app.router.add_post("/complete", self.complete)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def step(self, request: web.Request) -> web.Response:
        assert request.headers["Authorization"].startswith("Bearer ")  # the task's or workflow's OIDC token
        body = await request.json()
        if is_forward_run(body):
            broken = self.forward_status if body["run"] == "forward" else self.backward_status
            if broken is not None:
                return web.json_response({"error": "broken"}, status=broken)
            status, answer = Forward(_Planned(self)).handle(body)  # type: ignore[arg-type]
            return web.json_response(answer, status=status)
        self.tasks.append(body)
        planned = self.planned(f"{body['step_name']}.{body['action']}")
        if planned.get("arm"):
            prefix = f"{QUEUE}/tasks/{body['execution_id']}-{body['step_index'] + 1}-"
            await self.arm(planned["arm"], prefix)
        if planned.get("cancel"):
            # An operator cancels while this action is in flight; without a status it never answers.
            headers = {"Authorization": f"Bearer {self.engine.token()}"}
            async with (
                aiohttp.ClientSession() as session,
                session.post(body["callback_url"], json=CANCEL, headers=headers) as sent,
            ):
                if "status" not in planned:
                    return web.Response(status=200 if sent.status == 200 else 500)
        # The step executor names the action it answers: the saga has one callback endpoint.
        outcome = {
            **{k: v for k, v in planned.items() if k not in ("arm", "cancel")},
            "step_index": body["step_index"],
            "action": body["action"],
        }
        headers = {"Authorization": f"Bearer {self.engine.token()}"}
        async with aiohttp.ClientSession() as session:

            async def send(answer: dict[str, Any]) -> int:
                async with session.post(body["callback_url"], json=answer, headers=headers) as sent:
                    return sent.status

            if self.duplicates and self.previous is not None:
                await send(self.previous)  # the execution may have ended: any status will do
            status = await send(outcome)
            if self.duplicates:
                await send(outcome)
                self.previous = outcome
        return web.Response(status=200 if status == 200 else 500)

    def planned(self, key: str) -> dict[str, Any]:
        outcome = self.outcomes[key]
        if isinstance(outcome, list):
            return outcome.pop(0) if len(outcome) > 1 else outcome[0]
        return outcome

    async def arm(self, kind: str, task_prefix: str) -> None:
        """Through the emulator's faults service (this runs on the emulator's own event loop)."""
        async with grpc.aio.insecure_channel(self.engine.ctx.config.tasks) as channel:
            await fault_client(channel)(_struct({"kind": kind, "task_prefix": task_prefix}))

    async def complete(self, request: web.Request) -> web.Response:
        # As saga_completion does: each output comes once, beside the steps, and goes back into its record.
        body = await request.json()
        if "notice" in body:
            self.notices.append(body)
            if self.decisions:
                decided = self.decisions.pop(0)
                headers = {"Authorization": f"Bearer {self.engine.token()}"}
                async with aiohttp.ClientSession() as session:
                    for sent in decided if isinstance(decided, list) else [decided]:
                        async with session.post(self.tasks[-1]["callback_url"], json=sent, headers=headers):
                            pass
            return web.json_response({"message_id": "n-1", "event_id": "n-1"})
        self.completion_bodies.append(body)
        result = merge_outputs(body)
        self.completions.append(result)
        answer = {"status": result["status"]} if self.brief else result
        return web.json_response({"message_id": "1", "event_id": "e-1", "result": answer})


class _Planned:
    """What ``Forward`` needs of a ``StepExecutor``: each first attempt settles as the stand-ins plan it
    (an outcome without a status: a transient failure)."""

    def __init__(self, stand_ins: StandIns) -> None:
        self.stand_ins = stand_ins
        self.settings = Settings.from_env(
            {
                "SAGA_ALLOWED_HOSTS": "p",
                "SAGA_DISPATCH_DEADLINE_SECONDS": "60",
                "SAGA_DIRECT_RUN_SECONDS": "30" if stand_ins.direct else "0",
            }
        )

    def settle(self, task: StepTask, attempt: int) -> Settled:
        self.stand_ins.attempted.append((task.step_name, task.action))
        planned = self.stand_ins.planned(f"{task.step_name}.{task.action}")
        return Settled(dict(planned) if "status" in planned else None, message="503")


CANCEL = {
    "verb": "cancel",
    "reason": "customer left",
    "by": "ops@example.com",
    "at": "2026-12-06T10:00:00Z",
}
SUCCEEDED = {"status": "succeeded", "output": {"ref": "R-1"}, "error": None, "attempts": 1}
FAILED = {
    "status": "failed",
    "output": None,
    "attempts": 1,
    "error": {"kind": "business", "status_code": 409, "message": "no seats"},
}
ENV = {
    "SAGA_TASK_QUEUE_PATH": QUEUE,
    "SAGA_TASKS_INVOKER_EMAIL": "tasks-invoker@local-project.iam.gserviceaccount.com",
    "SAGA_DISPATCH_DEADLINE_SECONDS": "60",
}


def action(url: str) -> dict[str, Any]:
    return {
        "url": url,
        "method": "POST",
        "payload": {},
        "headers": {},
        "auth": "none",
        "timeout_seconds": 10,
        "max_attempts": 1,
    }


@pytest.mark.parametrize(
    ("fail_second", "duplicates"), [(False, False), (True, False), (False, True), (True, True)]
)
def test_saga_runs_its_steps_through_tasks_and_callbacks(
    engine: Any, fail_second: bool, duplicates: bool
) -> None:
    """With ``duplicates``, stale and repeated answers reach the saga's callback endpoint: the workflow
    records each action's first answer once and ignores the others."""
    tasks = tasks_v2.CloudTasksClient(
        transport=CloudTasksGrpcTransport(channel=grpc.insecure_channel(engine.ctx.config.tasks))
    )
    tasks.create_queue(parent=QUEUE.rsplit("/queues/", 1)[0], queue=tasks_v2.Queue(name=QUEUE))
    succeeded = {"status": "succeeded", "output": {"ref": "R-1"}, "error": None, "attempts": 1}
    failed = {
        "status": "failed",
        "output": None,
        "attempts": 1,
        "error": {"kind": "business", "status_code": 409, "message": "no seats"},
    }
    outcomes = {
        "book_flight.execute": succeeded,
        "book_flight.compensate": {**succeeded, "output": None},
        "charge.execute": failed if fail_second else succeeded,
    }
    stand_ins = StandIns(engine, outcomes, duplicates=duplicates)
    engine.run(stand_ins.start())
    try:
        workflow = engine.deploy(
            SAGA_YAML.read_text(),
            env={
                "SAGA_STEP_EXECUTOR_URL": stand_ins.url + "/step",
                "SAGA_COMPLETION_URL": stand_ins.url + "/complete",
                "SAGA_TASK_QUEUE_PATH": QUEUE,
                "SAGA_TASKS_INVOKER_EMAIL": "tasks-invoker@local-project.iam.gserviceaccount.com",
                "SAGA_DISPATCH_DEADLINE_SECONDS": "60",
            },
        )
        argument = {
            "saga_id": "trip-42",
            "steps": [
                {
                    "name": "book_flight",
                    "execute": action("http://p/book"),
                    "compensate": action("http://p/cancel"),
                    "execute_wait_seconds": 60,
                    "compensate_wait_seconds": 60,
                    "execute_refs": [],
                    "compensate_refs": ["book_flight"],
                    "max_output_bytes": 1000,
                },
                {
                    "name": "charge",
                    "execute": action("http://p/charge"),
                    "compensate": None,
                    "execute_wait_seconds": 60,
                    "compensate_wait_seconds": 60,
                    "execute_refs": ["book_flight"],
                    "compensate_refs": [],
                    "max_output_bytes": 1000,
                },
            ],
            "deadline_seconds": 600,
            "metadata": {"customer": "c-1"},
            "requested_at": "2026-11-25T22:00:00Z",
            "event_id": "ev-1",
        }
        started = engine.execute(workflow, argument, labels={"saga_id": "trip-42"})
        done = engine.wait_until(started.name, timeout=30)
        assert done.state.name == "SUCCEEDED", done.error
        result = json.loads(done.result)
        assert result["status"] == ("compensated" if fail_second else "succeeded")
        assert result["execution"] == started.name
        assert stand_ins.completions == [result]
        recorded = [(step["name"], step["status"]) for step in result["steps"]]
        assert recorded == (
            [("book_flight", "compensated"), ("charge", "failed")]
            if fail_second
            else [("book_flight", "succeeded"), ("charge", "succeeded")]
        )
        assert result["steps"][0]["execute"]["output"] == {"ref": "R-1"}
        assert not {"step_index", "action"} & set(result["steps"][0]["execute"])
        ran = [(t["step_name"], t["action"]) for t in stand_ins.tasks]
        expected = [("book_flight", "execute"), ("charge", "execute")]
        assert ran == ([*expected, ("book_flight", "compensate")] if fail_second else expected)
        assert stand_ins.tasks[0]["execution_id"] == started.name.rsplit("/", 1)[1]
        # A task body carries exactly the outputs its call references, and the output's share.
        bodies = {(t["step_name"], t["action"]): t for t in stand_ins.tasks}
        assert bodies["book_flight", "execute"]["outputs"] == {}
        assert bodies["charge", "execute"]["outputs"] == {"book_flight": {"ref": "R-1"}}
        if fail_second:
            assert bodies["book_flight", "compensate"]["outputs"] == {"book_flight": {"ref": "R-1"}}
        assert {t["max_output_bytes"] for t in stand_ins.tasks} == {1000}
        # The workflow keeps each output once: beside the records, not in them.
        sent = stand_ins.completion_bodies[0]
        assert sent["outputs"]["book_flight"] == {"ref": "R-1"}
        assert "output" not in sent["steps"][0]["execute"]
    finally:
        engine.run(stand_ins.stop())
        tasks.transport.close()


def saga_step(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "execute": action(f"http://p/{name}"),
        "compensate": action(f"http://p/undo-{name}"),
        "execute_wait_seconds": 60,
        "compensate_wait_seconds": 60,
        "execute_refs": [],
        "compensate_refs": [name],
        "max_output_bytes": 1000,
    }


def run_trip(
    engine: Any,
    outcomes: dict[str, Any],
    *,
    brief: bool = False,
    decisions: list[Any] | None = None,
    stuck_seconds: int = 0,
    park: dict[str, int] | None = None,
    notices: list[dict[str, Any]] | None = None,
    bodies: list[dict[str, Any]] | None = None,
    refs: dict[str, dict[str, list[str]]] | None = None,
    per_assignment: dict[str, int] | None = None,
    direct: bool = False,
    forward_status: int | None = None,
    backward_status: int | None = None,
) -> Any:
    """A three-step saga (a, b, c) on the engine: (result, tasks the executor got, billable steps).
    Each undo references its own step's output unless ``refs`` (step name → execute_refs and/or
    compensate_refs) says otherwise.
    ``brief``: the completion stand-in answers only the status; the result is what it received.
    ``decisions``: an operator's verb (or verbs, a list) for each notice; ``stuck_seconds``: the saga's stuck bound;
    ``park``: step name → park_seconds of the steps with on_failure "park"; ``notices`` gets the notices;
    ``per_assignment`` gets the billable steps counted one per variable assignment.
    ``direct``: the forward run makes the first attempts (see ``StandIns``); else every call goes through
    its task. ``forward_status``, ``backward_status``: that run is answered with that status (it broke)."""
    channel = grpc.insecure_channel(engine.ctx.config.tasks)
    tasks = tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
    with contextlib.suppress(AlreadyExists):
        tasks.create_queue(parent=QUEUE.rsplit("/queues/", 1)[0], queue=tasks_v2.Queue(name=QUEUE))
    stand_ins = StandIns(
        engine,
        {f"{n}.{a}": SUCCEEDED for n in "abc" for a in ("execute", "compensate")},
        brief=brief,
        direct=direct,
    )
    stand_ins.forward_status = forward_status
    stand_ins.backward_status = backward_status
    stand_ins.outcomes.update(outcomes)
    stand_ins.decisions = list(decisions or [])
    engine.run(stand_ins.start())
    try:
        env = {**ENV, "SAGA_STEP_EXECUTOR_URL": stand_ins.url + "/step"}
        workflow = engine.deploy(
            SAGA_YAML.read_text(), env={**env, "SAGA_COMPLETION_URL": stand_ins.url + "/complete"}
        )
        steps = [saga_step(n) for n in "abc"]
        for step in steps:
            step.update((refs or {}).get(step["name"], {}))
            if step["name"] in (park or {}):
                step.update(on_failure="park", park_seconds=(park or {})[step["name"]])
        argument = {
            "saga_id": "trip-43",
            "steps": steps,
            "deadline_seconds": 600,
            "stuck_decision_seconds": stuck_seconds,
        }
        started = engine.execute(workflow, argument, labels={"saga_id": "trip-43"})
        done = engine.wait_until(started.name, timeout=60)
        assert done.state.name == "SUCCEEDED", done.error
        result = json.loads(done.result)
        if brief:
            assert result == {"status": stand_ins.completions[0]["status"]}
            (result,) = stand_ins.completions
        assert stand_ins.completions == [result]
        admin = requests.get(f"{engine.http}/admin/executions/{started.name.rsplit('/', 1)[1]}", timeout=10)
        ran = [(t["step_name"], t["action"]) for t in stand_ins.tasks]
        if notices is not None:
            notices.extend(stand_ins.notices)
        if bodies is not None:
            bodies.extend(stand_ins.tasks)
        if per_assignment is not None:
            per_assignment.update(admin.json()["billableStepsPerAssignment"])
        return result, ran, admin.json()["billableSteps"]
    finally:
        engine.run(stand_ins.stop())
        tasks.transport.close()


def _struct(fields: dict[str, str]) -> Any:
    message = struct_pb2.Struct()
    message.update(fields)
    return message


def statuses(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [(step["name"], step["status"]) for step in result["steps"]]


def test_a_saga_whose_first_attempts_all_succeed_creates_no_task_and_costs_5_billable_steps(
    engine: Any,
) -> None:
    counted: dict[str, int] = {}
    result, ran, billable = run_trip(engine, {}, direct=True, per_assignment=counted)
    assert (result["status"], result["cause"], result["uncompensated_steps"]) == ("succeeded", None, [])
    assert ran == []
    assert statuses(result) == [("a", "succeeded"), ("b", "succeeded"), ("c", "succeeded")]
    assert [step["execute"]["output"] for step in result["steps"]] == [{"ref": "R-1"}] * 3
    assert {step["execute"]["attempts"] for step in result["steps"]} == {1}
    # Callback endpoint, forward run, its check, completion call, return. The stand-in URLs are not
    # Google's, so their two calls count as external here (internal for Cloud Run functions). Counting
    # each assignment: the two results stored (endpoint, forward run) and the completion's answer.
    assert billable == {"internal": 3, "external": 2, "total": 5}
    assert counted == {"internal": 6, "external": 2, "total": 8}


def test_the_same_saga_through_tasks_costs_23_billable_steps_and_ends_the_same(engine: Any) -> None:
    counted: dict[str, int] = {}
    result, ran, billable = run_trip(engine, {}, per_assignment=counted)
    direct, _, _ = run_trip(engine, {}, direct=True)
    assert ran == [("a", "execute"), ("b", "execute"), ("c", "execute")]
    assert _comparable(result) == _comparable(direct)
    # A forward run that starts no step (SAGA_DIRECT_RUN_SECONDS=0), then per step its task, its callback
    # and its record, as before the forward run, with init and the resume check of each step.
    assert billable == {"internal": 18, "external": 5, "total": 23}
    assert counted == {"internal": 73, "external": 5, "total": 78}


def test_the_outcome_log_line_gives_both_readings(engine: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="localcloud.workflows.executions")
    counted: dict[str, int] = {}
    result, _, billable = run_trip(engine, {}, per_assignment=counted, direct=True)
    execution_id = result["execution"].rsplit("/", 1)[1]
    [line] = [
        json.loads(r.getMessage())
        for r in caplog.records
        if r.name == "localcloud.workflows.executions" and execution_id in r.getMessage()
    ]
    assert (line["billable_steps"], line["billable_steps_per_assignment"]) == (billable, counted)
    assert "5 billable steps (3 internal, 2 external); 8 counting each assignment" in line["message"]


def test_a_step_declined_in_the_forward_run_is_compensated_by_the_backward_run_for_7_steps(
    engine: Any,
) -> None:
    counted: dict[str, int] = {}
    result, ran, billable = run_trip(engine, {"c.execute": FAILED}, direct=True, per_assignment=counted)
    through_tasks, ran_through_tasks, _ = run_trip(engine, {"c.execute": FAILED})
    assert (result["status"], result["cause"], result["failed_step"]) == ("compensated", "step_failed", "c")
    assert result["reason"] == "no seats"
    assert ran == []  # the undos' first attempts succeeded in the backward run
    assert ran_through_tasks[3:] == [("b", "compensate"), ("a", "compensate")]
    assert _comparable(result) == _comparable(through_tasks)
    # The happy saga's 5 (8) and the backward run and its check (its call and its result stored).
    assert (billable["total"], counted["total"]) == (7, 11)


def test_a_backward_run_that_breaks_leaves_every_undo_to_its_task(engine: Any) -> None:
    outcomes = {"c.execute": FAILED}
    result, ran, _ = run_trip(engine, outcomes, direct=True, backward_status=500)
    assert ran == [("b", "compensate"), ("a", "compensate")]
    assert (result["status"], result["failed_step"]) == ("compensated", "c")
    assert statuses(result) == [("a", "compensated"), ("b", "compensated"), ("c", "failed")]


def test_an_undo_that_does_not_succeed_in_the_forward_run_is_taken_over_with_the_undos_left(
    engine: Any,
) -> None:
    bodies: list[dict[str, Any]] = []
    outcomes = {"c.execute": FAILED, "b.compensate": [{"transient": True}, SUCCEEDED]}
    result, ran, _ = run_trip(engine, outcomes, direct=True, bodies=bodies)
    through_tasks, _, _ = run_trip(engine, {"c.execute": FAILED})
    assert (result["status"], result["failed_step"]) == ("compensated", "c")
    # b's undo goes on through its task, which counts the attempt made; a's undo follows it there.
    assert ran == [("b", "compensate"), ("a", "compensate")]
    assert [body["attempts_before"] for body in bodies] == [1, 0]
    assert _comparable(result) == _comparable(through_tasks)


def test_an_undo_done_in_the_forward_run_is_not_done_again(engine: Any) -> None:
    outcomes = {"c.execute": FAILED, "a.compensate": [{"transient": True}, SUCCEEDED]}
    result, ran, _ = run_trip(engine, outcomes, direct=True)
    assert ran == [("a", "compensate")]  # b's undo succeeded in the forward run
    assert statuses(result) == [("a", "compensated"), ("b", "compensated"), ("c", "failed")]


def test_a_transient_first_attempt_goes_on_through_its_task_which_counts_it(engine: Any) -> None:
    bodies: list[dict[str, Any]] = []
    transient = {"transient": True}
    result, ran, _ = run_trip(engine, {"b.execute": [transient, SUCCEEDED]}, direct=True, bodies=bodies)
    assert result["status"] == "succeeded"
    assert ran == [("b", "execute"), ("c", "execute")]
    # b's task carries the attempt the forward run made, so max_attempts still holds exactly; c's none.
    assert [body["attempts_before"] for body in bodies] == [1, 0]
    assert bodies[1]["outputs"] == {}
    assert [step["execute"]["output"] for step in result["steps"]] == [{"ref": "R-1"}] * 3


def test_a_forward_run_that_breaks_leaves_every_step_to_its_task(engine: Any) -> None:
    # The executor killed mid-run, or its answer lost: the workflow learns nothing from it, and every
    # step runs through its task from the first (the participants dedupe the repeated Idempotency-Key).
    result, ran, _ = run_trip(engine, {}, direct=True, forward_status=500)
    assert result["status"] == "succeeded"
    assert ran == [("a", "execute"), ("b", "execute"), ("c", "execute")]


def test_the_forward_run_hands_over_the_outputs_the_next_task_references(engine: Any) -> None:
    bodies: list[dict[str, Any]] = []
    refs = {"c": {"execute_refs": ["a", "b"]}}
    result, ran, _ = run_trip(
        engine, {"c.execute": [{"transient": True}, SUCCEEDED]}, direct=True, bodies=bodies, refs=refs
    )
    assert result["status"] == "succeeded"
    assert ran == [("c", "execute")]
    assert bodies[0]["outputs"] == {"a": {"ref": "R-1"}, "b": {"ref": "R-1"}}


def _comparable(result: dict[str, Any]) -> Any:
    """A result without what differs between two runs (times, execution)."""
    times = ("started_at", "finished_at")
    steps = [
        {
            **step,
            **{
                key: {k: v for k, v in (step.get(key) or {}).items() if k not in times} or step.get(key)
                for key in ("execute", "compensate")
            },
        }
        for step in result["steps"]
    ]
    return {**{k: v for k, v in result.items() if k not in (*times, "execution")}, "steps": steps}


def test_a_compensation_that_fails_for_good_does_not_stop_the_earlier_undos(engine: Any) -> None:
    result, ran, _ = run_trip(engine, {"c.execute": FAILED, "b.compensate": FAILED})
    assert ran[3:] == [("b", "compensate"), ("a", "compensate")]
    assert result["status"] == "failed"
    assert result["uncompensated_steps"] == ["b"]
    assert (result["failed_step"], result["cause"]) == ("b", "step_failed")
    assert statuses(result) == [("a", "compensated"), ("b", "compensation_failed"), ("c", "failed")]


def test_a_refused_task_create_compensates_the_done_steps_and_says_why(engine: Any) -> None:
    # When a's task arrives, b's create (task name <execution>-1-execute) is armed to be refused.
    result, ran, _ = run_trip(engine, {"a.execute": {**SUCCEEDED, "arm": "permission_denied"}})
    assert ran == [("a", "execute"), ("a", "compensate")]
    assert (result["status"], result["cause"], result["failed_step"]) == ("compensated", "engine_error", "b")
    assert result["error"]["code"] == 403 and "HttpError" in result["error"]["tags"]
    assert statuses(result) == [("a", "compensated"), ("b", "failed"), ("c", "not_run")]
    assert result["steps"][1]["execute"]["error"]["kind"] == "engine_error"


def test_a_create_whose_answer_was_lost_goes_on_as_if_nothing_happened(engine: Any) -> None:
    result, ran, _ = run_trip(engine, {"a.execute": {**SUCCEEDED, "arm": "lose_answer"}})
    assert (result["status"], result["cause"], result["error"]) == ("succeeded", None, None)
    assert ran == [("a", "execute"), ("b", "execute"), ("c", "execute")]


def test_a_cancel_during_a_step_deletes_its_task_and_compensates_every_done_step(engine: Any) -> None:
    result, ran, _ = run_trip(engine, {"b.execute": {"cancel": True}})
    assert ran == [("a", "execute"), ("b", "execute"), ("b", "compensate"), ("a", "compensate")]
    assert (result["status"], result["cause"], result["failed_step"]) == ("compensated", "cancelled", "b")
    assert result["audit"] == [
        {"verb": "cancel", "step": None, **{k: CANCEL[k] for k in ("reason", "by", "at")}}
    ]
    assert statuses(result) == [("a", "compensated"), ("b", "compensated"), ("c", "not_run")]


def test_each_task_body_carries_exactly_the_outputs_its_call_references(engine: Any) -> None:
    a, b = {"ref": "A"}, {"ref": "B"}
    outcomes = {
        "a.execute": {**SUCCEEDED, "output": a},
        "b.execute": {**SUCCEEDED, "output": b},
        "c.execute": {"cancel": True},  # c's outcome stays unknown: it has no output
    }
    bodies: list[dict[str, Any]] = []
    refs = {"b": {"compensate_refs": ["a", "b"]}, "c": {"execute_refs": ["a"], "compensate_refs": ["c"]}}
    result, _, billable = run_trip(engine, outcomes, refs=refs, bodies=bodies)
    assert (result["status"], result["cause"]) == ("compensated", "cancelled")
    assert {(t["step_name"], t["action"]): t["outputs"] for t in bodies} == {
        ("a", "execute"): {},
        ("b", "execute"): {},
        ("c", "execute"): {"a": a},  # not b's
        ("c", "compensate"): {},  # its own reference resolves to null in step_executor
        ("b", "compensate"): {"a": a, "b": b},
        ("a", "compensate"): {"a": a},
    }
    # Picking costs steps only where a call references another step's output: c's execute (a record
    # step, a loop and one pick) and b's undo (a loop and two picks). Own or no references cost none.
    *_, own_only = run_trip(engine, outcomes)
    assert billable["total"] - own_only["total"] == 6


def test_a_cancel_during_the_undos_is_recorded_and_undoing_goes_on(engine: Any) -> None:
    result, ran, _ = run_trip(engine, {"c.execute": FAILED, "b.compensate": {**SUCCEEDED, "cancel": True}})
    assert ran[3:] == [("b", "compensate"), ("a", "compensate")]
    assert (result["status"], result["cause"], result["uncompensated_steps"]) == (
        "compensated",
        "step_failed",
        [],
    )
    assert [entry["verb"] for entry in result["audit"]] == ["cancel"]
    assert statuses(result) == [("a", "compensated"), ("b", "compensated"), ("c", "failed")]


def test_three_large_outputs_fit_the_memory_because_each_is_kept_once(engine: Any) -> None:
    # Before issue 15 three outputs of 60 KB broke the 512 KB limit (kept twice, sent in every task body).
    large = {**SUCCEEDED, "output": {"blob": "x" * 60_000}}
    result, _, _ = run_trip(engine, {f"{n}.execute": large for n in "abc"}, brief=True)
    assert (result["status"], result["error"]) == ("succeeded", None)
    assert [step["execute"]["output"] for step in result["steps"]] == [large["output"]] * 3


def test_an_output_over_its_budget_compensates_the_step_itself_and_those_before(engine: Any) -> None:
    too_large = {
        "status": "failed",
        "output": None,
        "attempts": 1,
        "error": {"kind": "output_too_large", "status_code": 200, "message": "over SAGA_STATE_BUDGET_BYTES"},
    }
    result, ran, billable = run_trip(engine, {"c.execute": too_large})
    assert (result["status"], result["cause"], result["failed_step"]) == ("compensated", "step_failed", "c")
    assert result["reason"] == "over SAGA_STATE_BUDGET_BYTES"
    # Its effect happened, so it is undone too, first.
    assert ran[3:] == [("c", "compensate"), ("b", "compensate"), ("a", "compensate")]
    assert statuses(result) == [("a", "compensated"), ("b", "compensated"), ("c", "compensated")]
    assert billable["total"] == 41  # the declined saga's 37 and one more compensation (4)


def verb(name: str, step: str | None, reason: str = "checked by hand") -> dict[str, Any]:
    return {
        "verb": name,
        "step": step,
        "reason": reason,
        "by": "ops@example.com",
        "at": "2026-12-06T10:00:00Z",
    }


def test_a_stuck_compensation_skipped_by_an_operator_lets_the_others_run_and_ends_compensated(
    engine: Any,
) -> None:
    notices: list[dict[str, Any]] = []
    result, ran, _ = run_trip(
        engine,
        {"c.execute": FAILED, "b.compensate": FAILED},
        stuck_seconds=60,
        decisions=[verb("skip", "b", "refunded by hand")],
        notices=notices,
    )
    [notice] = notices
    assert (notice["notice"], notice["step"], notice["action"], notice["verbs"]) == (
        "stuck",
        "b",
        "compensate",
        ["retry", "skip"],
    )
    assert notice["error"] == FAILED["error"] and notice["sequence"] == 1 and notice["until"]
    assert ran[3:] == [("b", "compensate"), ("a", "compensate")]
    assert (result["status"], result["uncompensated_steps"]) == ("compensated", [])
    assert statuses(result) == [("a", "compensated"), ("b", "compensated"), ("c", "failed")]
    assert result["steps"][1]["compensate"]["status"] == "skipped"
    assert result["audit"] == [verb("skip", "b", "refunded by hand")]


def test_a_stuck_compensation_with_no_decision_within_the_bound_ends_failed_after_the_other_undos(
    engine: Any,
) -> None:
    notices: list[dict[str, Any]] = []
    result, ran, _ = run_trip(
        engine, {"c.execute": FAILED, "b.compensate": FAILED}, stuck_seconds=2, notices=notices
    )
    assert [n["notice"] for n in notices] == ["stuck"]
    assert ran[3:] == [("b", "compensate"), ("a", "compensate")]
    assert (result["status"], result["uncompensated_steps"], result["failed_step"]) == ("failed", ["b"], "b")
    assert statuses(result) == [("a", "compensated"), ("b", "compensation_failed"), ("c", "failed")]


def test_retry_on_a_stuck_compensation_runs_it_again_with_a_new_task_and_a_new_key_round(engine: Any) -> None:
    # b's undo is refused (a business answer) once, then works: the retry needs a new Idempotency-Key.
    notices: list[dict[str, Any]] = []
    bodies: list[dict[str, Any]] = []
    result, ran, _ = run_trip(
        engine,
        {"c.execute": FAILED, "b.compensate": [FAILED, SUCCEEDED]},
        stuck_seconds=60,
        decisions=[[verb("skip", "a"), verb("retry", "b", "fixed the refund service")]],
        notices=notices,
        bodies=bodies,
    )
    undo_b = [t for t in bodies if (t["step_name"], t["action"]) == ("b", "compensate")]
    assert [t["key_round"] for t in undo_b] == [0, 1]
    assert ran[3:] == [("b", "compensate"), ("b", "compensate"), ("a", "compensate")]
    assert (result["status"], result["uncompensated_steps"]) == ("compensated", [])
    # The skip named another step: ignored; the retry is recorded.
    assert [(e["verb"], e["step"]) for e in result["audit"]] == [("retry", "b")]
    assert len(notices) == 1


def test_a_parked_step_retried_by_an_operator_goes_on_and_the_saga_succeeds(engine: Any) -> None:
    notices: list[dict[str, Any]] = []
    result, ran, _ = run_trip(
        engine,
        {"b.execute": [FAILED, SUCCEEDED]},
        park={"b": 60},
        decisions=[verb("retry", "b", "seats added")],
        notices=notices,
    )
    [notice] = notices
    assert (notice["notice"], notice["step"], notice["action"], notice["verbs"]) == (
        "parked",
        "b",
        "execute",
        ["retry", "compensate", "cancel"],
    )
    assert ran == [("a", "execute"), ("b", "execute"), ("b", "execute"), ("c", "execute")]
    assert (result["status"], result["cause"]) == ("succeeded", None)
    assert [(e["verb"], e["step"], e["reason"]) for e in result["audit"]] == [("retry", "b", "seats added")]


def test_a_parked_step_given_up_by_an_operator_compensates_the_done_steps(engine: Any) -> None:
    result, ran, _ = run_trip(
        engine, {"b.execute": FAILED}, park={"b": 60}, decisions=[verb("compensate", None, "no seats")]
    )
    assert ran == [("a", "execute"), ("b", "execute"), ("a", "compensate")]
    assert (result["status"], result["cause"], result["failed_step"]) == ("compensated", "step_failed", "b")
    assert "compensated by ops@example.com: no seats" in result["reason"]
    assert statuses(result) == [("a", "compensated"), ("b", "failed"), ("c", "not_run")]
    assert [(e["verb"], e["step"]) for e in result["audit"]] == [("compensate", "b")]


def test_a_parked_step_whose_bound_passes_compensates(engine: Any) -> None:
    notices: list[dict[str, Any]] = []
    result, ran, _ = run_trip(engine, {"b.execute": FAILED}, park={"b": 2}, notices=notices)
    assert [n["notice"] for n in notices] == ["parked"]
    assert ran == [("a", "execute"), ("b", "execute"), ("a", "compensate")]
    assert (result["status"], result["cause"], result["audit"]) == ("compensated", "step_failed", [])


def test_a_cancel_while_parked_compensates_with_cause_cancelled(engine: Any) -> None:
    result, ran, _ = run_trip(
        engine, {"b.execute": FAILED}, park={"b": 60}, decisions=[verb("cancel", None, "customer left")]
    )
    assert ran == [("a", "execute"), ("b", "execute"), ("a", "compensate")]
    assert (result["status"], result["cause"]) == ("compensated", "cancelled")
    assert [(e["verb"], e["step"]) for e in result["audit"]] == [("cancel", None)]


def decision_wait_program(hours: int) -> str:
    """A workflow whose main waits ``hours`` for a decision through the saga workflow's own
    ``await_decision`` routine (copied from the deployed source, not rewritten)."""
    source = SAGA_YAML.read_text()
    start = source.index("\nawait_decision:\n")
    routine = source[start : source.index("\n# The completion function answers", start)]
    return (
        "main:\n  steps:\n"
        "    - open:\n        call: events.create_callback_endpoint\n"
        "        args:\n          http_callback_method: POST\n        result: cb\n"
        f"    - decide:\n        call: await_decision\n"
        f"        args:\n          callback: ${{cb}}\n          until: ${{sys.now() + {hours * 3600}}}\n"
        "        result: decision\n"
        "    - done:\n        return: ${decision}\n" + routine + "\n"
    )


def test_an_operators_wait_of_days_wakes_hourly_for_four_billable_steps_an_hour(
    manual_engine: Any,
) -> None:
    engine = manual_engine
    workflow = engine.deploy(decision_wait_program(hours=24))
    started = engine.execute(workflow)
    engine.wait_for_callback(started.name, waiters=1)
    execution_id = started.name.rsplit("/", 1)[1]

    def billable() -> dict[str, int]:
        answer = requests.get(f"{engine.http}/admin/executions/{execution_id}", timeout=10)
        return dict(answer.json()["billableSteps"])

    def assigned() -> dict[str, int]:
        answer = requests.get(f"{engine.http}/admin/executions/{execution_id}", timeout=10)
        return dict(answer.json()["billableStepsPerAssignment"])

    before = billable()
    assigned_before = assigned()
    for _ in range(10):
        engine.advance(3600)
        engine.wait_for_callback(started.name, waiters=1)
    after = billable()
    per_hour = {kind: (after[kind] - before[kind]) / 10 for kind in ("internal", "external")}
    # Each hourly wake: the await (external), the except's check and the next pick of a timeout.
    assert per_hour == {"internal": 3.0, "external": 1.0}
    # Counting each assignment: the same, as a wake that times out assigns nothing.
    assigned_after = assigned()
    assert {k: (assigned_after[k] - assigned_before[k]) / 10 for k in ("internal", "external")} == per_hour
    # The last hour goes down the ladder (5 min, 30 s, 5 s, 1 s) and the bound ends the wait.
    for _ in range(14 * 12 + 20):
        engine.advance(300)
    done = engine.wait_until(started.name)
    assert done.state.name == "SUCCEEDED" and json.loads(done.result) is None
