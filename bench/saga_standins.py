"""The Google services around the saga workflow, played in this process for a replay on the engine: Cloud
Tasks (each task's size kept, the saga's callback answered as step_executor would), step_executor's forward
runs and saga_completion."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from saga_orchestrator.executor import Settled, StepTask
from saga_orchestrator.forward import Forward
from saga_orchestrator.settings import Settings

from localcloud.clock import Clock
from localcloud.workflows.engine.host import ExecutionInfo
from localcloud.workflows.engine.metering import StepMeter
from localcloud.workflows.engine.standalone import StandaloneHost


class StandInCloud(StandaloneHost):
    """``tasks.create`` keeps the task's size and answers the saga's callback with
    ``answers[(step name, action)]`` at once (no answer: the call never settles, as when Cloud Tasks keeps
    retrying a participant); ``tasks.delete`` succeeds."""

    def __init__(
        self, clock: Clock, env: Mapping[str, str], answers: Mapping[tuple[str, str], dict[str, Any]]
    ) -> None:
        super().__init__(
            clock=clock,
            info=ExecutionInfo(user_env=dict(env)),
            # Cloud Run functions in production
            internal_url_prefixes=(env["SAGA_COMPLETION_URL"], env["SAGA_STEP_EXECUTOR_URL"]),
        )
        self.answers = answers
        self.task_bytes: list[int] = []

    async def call_connector(self, name: str, args: Mapping[str, Any]) -> Any:
        if name.endswith(".tasks.delete"):
            return {}
        if not name.endswith(".tasks.create"):
            return await super().call_connector(name, args)
        task = args["body"]["task"]
        self.task_bytes.append(len(json.dumps(task, separators=(",", ":")).encode("utf-8")))
        body = json.loads(base64.b64decode(task["httpRequest"]["body"]))
        answer = self.answers.get((body["step_name"], body["action"]))
        if answer is not None:
            reply = {**answer, "step_index": body["step_index"], "action": body["action"]}
            self.deliver(body["callback_url"], {"body": reply})
        created = datetime.datetime.fromtimestamp(self.clock.now(), datetime.UTC)
        return {"name": task["name"], "createTime": created.isoformat().replace("+00:00", "Z")}


class _AnsweringExecutor:
    """What ``Forward`` needs of a ``StepExecutor``: each first attempt settles as ``answers`` say (no
    answer: a transient failure, the call left to Cloud Tasks)."""

    def __init__(self, answers: Mapping[tuple[str, str], dict[str, Any]]) -> None:
        self.settings = Settings.from_env({})
        self.answers = answers

    def settle(self, task: StepTask, attempt: int) -> Settled:
        answer = self.answers.get((task.step_name, task.action))
        return Settled(dict(answer) if answer is not None else None, message="503 from the stand-in")


async def functions_stand_in(
    answers: Mapping[tuple[str, str], dict[str, Any]],
) -> tuple[web.AppRunner, dict[str, str]]:
    """saga_completion (answers a published result) and step_executor's forward runs (the real
    ``Forward`` over ``answers``), on one free port: the environment variables naming them."""
    forward = Forward(_AnsweringExecutor(answers))  # type: ignore[arg-type]

    async def complete(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response(
            {"message_id": "1", "event_id": "1", "result": {"status": body.get("status")}}
        )

    async def execute(request: web.Request) -> web.Response:
        status, answer = forward.handle(await request.json())
        return web.json_response(answer, status=status)

    app = web.Application()
    app.router.add_post("/complete", complete)
    app.router.add_post("/execute", execute)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    return runner, {"SAGA_COMPLETION_URL": f"{base}/complete", "SAGA_STEP_EXECUTOR_URL": f"{base}/execute"}


async def settled(host: StandInCloud, meter: StepMeter, before: int) -> None:
    """Until the execution waits on its callback again, having counted a step since ``before``."""
    deadline = time.monotonic() + 10
    while not (host.waiting == 1 and meter.total > before):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the execution did not wait again ({host.waiting} waiting, {meter.total})")
        await asyncio.sleep(0.001)


async def quiet(host: StandInCloud, meter: StepMeter) -> None:
    """Until the execution waits on its callback and counts no more steps (a clock tick may or may not
    have woken it: a long wait sleeps through most ticks)."""
    deadline = time.monotonic() + 10
    seen, still = meter.total, 0
    while still < 5:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the execution did not settle ({host.waiting} waiting, {meter.total})")
        await asyncio.sleep(0.001)
        still = still + 1 if host.waiting == 1 and meter.total == seen else 0
        seen = meter.total
