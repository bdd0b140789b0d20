"""W3C trace context for a saga (https://www.w3.org/TR/trace-context/): one trace per saga, derived from
its id, so the participant calls and the log lines of the three functions for one saga share a trace id
that nobody has to store."""

from __future__ import annotations

import functools
import hashlib
import os
import random

# Span ids come from a generator of this module's own (seeded from the OS, and again in each forked
# worker), so calling code's use of the global ``random`` (a seeded test, say) neither affects nor is
# affected by them.
_spans = random.Random()
os.register_at_fork(after_in_child=_spans.seed)


@functools.lru_cache(maxsize=4096)
def trace_id(saga_id: str) -> str:
    """32 hex characters, the same for every call and log line of one saga (remembered for the sagas
    seen last: one request derives it for each call and log line)."""
    return hashlib.sha256(saga_id.encode("utf-8")).hexdigest()[:32]


def traceparent(saga_id: str) -> str:
    """The ``traceparent`` header of one call: the saga's trace id, a fresh span id, sampled."""
    # A span id only has to be unique, not secret: a PRNG saves a system call per call. All zeros is
    # not a valid span id.
    return f"00-{trace_id(saga_id)}-{_spans.getrandbits(64) or 1:016x}-01"
