from __future__ import annotations

import re

from saga_orchestrator.tracing import trace_id, traceparent


def test_every_call_of_one_saga_shares_its_trace_and_gets_its_own_span():
    first, second = traceparent("trip-42"), traceparent("trip-42")
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", first)
    assert first.split("-")[1] == second.split("-")[1] == trace_id("trip-42")
    assert first.split("-")[2] != second.split("-")[2]


def test_each_saga_has_its_own_stable_trace_id():
    assert trace_id("trip-42") == trace_id("trip-42") != trace_id("trip-43")
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id("trip-42"))
