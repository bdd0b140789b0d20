"""Time-driven behaviour under a ManualClock: callbacks, sleeps, retry backoff, parked executions,
cancellation, and the error stack."""

from __future__ import annotations

import asyncio
import tracemalloc

import pytest

from localcloud.clock import ManualClock
from localcloud.workflows.engine.interpreter import run_execution
from localcloud.workflows.engine.loader import load_workflow
from localcloud.workflows.engine.metering import StepMeter
from localcloud.workflows.engine.standalone import StandaloneHost
from localcloud.workflows.lang.errors import WorkflowError
from tests.support.eventually import eventually_async

CALLBACK_SOURCE = """\
main:
  steps:
    - create:
        call: events.create_callback_endpoint
        args:
          http_callback_method: POST
        result: cb
    - publish:
        assign:
          - url: ${cb.url}
    - wait:
        call: events.await_callback
        args:
          callback: ${cb}
          timeout: 3600
        result: request
    - done:
        return: ${request.http_request.body.approved}
"""


def callback_url(host: StandaloneHost) -> str:
    return next(iter(host._callbacks))


async def test_a_callback_delivered_while_waiting_resumes_the_execution() -> None:
    clock = ManualClock()
    host = StandaloneHost(clock=clock)
    task = asyncio.ensure_future(run_execution(load_workflow(CALLBACK_SOURCE), None, host))
    await eventually_async(lambda: host.waiting == 1)
    assert host.deliver(callback_url(host), {"body": {"approved": True}, "method": "POST"})
    assert await asyncio.wait_for(task, 5) is True


async def test_a_callback_delivered_before_the_await_is_kept() -> None:
    source = CALLBACK_SOURCE.replace(
        "    - wait:",
        "    - pause:\n        call: sys.sleep\n        args:\n          seconds: 10\n    - wait:",
    )
    clock = ManualClock()
    host = StandaloneHost(clock=clock)
    task = asyncio.ensure_future(run_execution(load_workflow(source), None, host))
    await eventually_async(lambda: clock.pending_sleepers == 1)
    assert host.deliver(callback_url(host), {"body": {"approved": False}})
    await clock.advance(10)
    assert await asyncio.wait_for(task, 5) is False


async def test_a_callback_with_the_wrong_method_is_refused() -> None:
    host = StandaloneHost(clock=ManualClock())
    task = asyncio.ensure_future(run_execution(load_workflow(CALLBACK_SOURCE), None, host))
    await eventually_async(lambda: host.waiting == 1)
    assert not host.deliver(callback_url(host), {"body": {}, "method": "GET"})
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_await_times_out_exactly_at_the_deadline() -> None:
    clock = ManualClock()
    host = StandaloneHost(clock=clock)
    task = asyncio.ensure_future(run_execution(load_workflow(CALLBACK_SOURCE), None, host))
    await eventually_async(lambda: host.waiting == 1)
    await clock.advance(3599)
    assert not task.done()
    await clock.advance(1)
    with pytest.raises(WorkflowError) as raised:
        await asyncio.wait_for(task, 5)
    assert raised.value.tags == ["TimeoutError"]
    assert raised.value.stack is not None and raised.value.stack[0]["step"] == "wait"


async def test_sys_sleep_parks_on_the_host_clock_until_it_moves() -> None:
    source = "- s:\n    call: sys.sleep\n    args:\n      seconds: 60\n- r:\n    return: ${sys.now()}\n"
    clock = ManualClock()
    task = asyncio.ensure_future(run_execution(load_workflow(source), None, StandaloneHost(clock=clock)))
    await eventually_async(lambda: clock.pending_sleepers == 1)
    start = clock.now()
    await clock.advance(59.9)
    assert not task.done()
    await clock.advance(0.1)
    assert await asyncio.wait_for(task, 5) == start + 60


RETRY_SOURCE = """\
- init:
    assign:
      - n: 0
- flaky:
    try:
      steps:
        - count:
            assign:
              - n: ${n + 1}
        - fail:
            raise:
              tags: ["ConnectionError"]
    retry: ${http.default_retry}
"""


async def test_default_retry_backs_off_1_then_1_25_then_1_5625_seconds() -> None:
    clock = ManualClock()
    task = asyncio.ensure_future(
        run_execution(load_workflow(RETRY_SOURCE), None, StandaloneHost(clock=clock))
    )
    start = clock.now()
    delays = []
    for _ in range(5):
        await eventually_async(lambda: clock.pending_sleepers == 1)
        deadline = clock.next_deadline()
        assert deadline is not None
        delays.append(round(deadline - clock.now(), 6))
        await clock.advance(deadline - clock.now())
    with pytest.raises(WorkflowError) as raised:
        await asyncio.wait_for(task, 5)
    assert raised.value.tags == ["ConnectionError"]
    assert delays == [1.0, 1.25, 1.5625, 1.953125, 2.441406]
    assert clock.now() - start == pytest.approx(sum([1.0, 1.25, 1.5625, 1.953125, 2.44140625]))


async def test_cancelling_the_task_cancels_a_parked_execution() -> None:
    host = StandaloneHost(clock=ManualClock())
    task = asyncio.ensure_future(run_execution(load_workflow(CALLBACK_SOURCE), None, host))
    await eventually_async(lambda: host.waiting == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert host.waiting == 0


async def test_parallel_branch_cancellation_reaches_every_branch() -> None:
    source = """\
- fan:
    parallel:
      branches:
        - a:
            steps:
              - s:
                  call: sys.sleep
                  args:
                    seconds: 100
        - b:
            steps:
              - s:
                  call: sys.sleep
                  args:
                    seconds: 100
"""
    clock = ManualClock()
    task = asyncio.ensure_future(run_execution(load_workflow(source), None, StandaloneHost(clock=clock)))
    await eventually_async(lambda: clock.pending_sleepers == 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually_async(lambda: clock.pending_sleepers == 0)


async def test_thousands_of_parked_executions_cost_coroutines_with_bounded_memory() -> None:
    program = load_workflow(CALLBACK_SOURCE)
    clock = ManualClock()
    hosts = [StandaloneHost(clock=clock) for _ in range(2000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tasks = [asyncio.ensure_future(run_execution(program, None, host)) for host in hosts]
        await eventually_async(lambda: all(h.waiting == 1 for h in hosts), timeout=30)
        per_execution = (tracemalloc.get_traced_memory()[0] - before) / len(hosts)
    finally:
        tracemalloc.stop()
    assert per_execution < 20_000, f"{per_execution:.0f} bytes per parked execution"
    for host in hosts:
        host.deliver(callback_url(host), {"body": {"approved": True}})
    assert await asyncio.wait_for(asyncio.gather(*tasks), 30) == [True] * len(hosts)


async def test_an_uncaught_error_carries_the_stack_through_subworkflows_and_a_context() -> None:
    source = """\
main:
  steps:
    - outer:
        call: middle
middle:
  steps:
    - inner:
        assign:
          - x: ${[1][5]}
"""
    with pytest.raises(WorkflowError) as raised:
        await run_execution(load_workflow(source), None, StandaloneHost(clock=ManualClock()))
    error = raised.value
    assert error.tags == ["IndexError"]
    assert error.stack == [
        {"step": "inner", "routine": "middle", "line": 7, "column": 7},
        {"step": "outer", "routine": "main", "line": 3, "column": 7},
    ]
    assert error.context is not None
    assert 'in step "inner", routine "middle", line: 7' in error.context
    assert 'in step "outer", routine "main", line: 3' in error.context


async def test_the_meter_shows_the_step_now_running() -> None:
    meter = StepMeter()
    host = StandaloneHost(clock=ManualClock())
    task = asyncio.ensure_future(run_execution(load_workflow(CALLBACK_SOURCE), None, host, meter=meter))
    await eventually_async(lambda: host.waiting == 1)
    assert meter.current == ("main", "wait")
    assert (meter.internal, meter.external, meter.total) == (2, 1, 3)
    host.deliver(callback_url(host), {"body": {"approved": True}})
    await asyncio.wait_for(task, 5)
    assert meter.total == 4


async def test_a_step_limit_given_by_the_service_is_enforced() -> None:
    source = "- a:\n    assign:\n      - x: 1\n- b:\n    assign:\n      - y: 2\n- c:\n    return: 3\n"
    with pytest.raises(WorkflowError) as raised:
        await run_execution(load_workflow(source), None, StandaloneHost(clock=ManualClock()), step_limit=2)
    assert raised.value.tags == ["ResourceLimitError"]
    assert raised.value.stack is not None and raised.value.stack[0]["step"] == "c"
