"""W3C trace context for a saga (https://www.w3.org/TR/trace-context/): one trace per saga, derived from
its id, so the participant calls and the log lines of the three functions for one saga share a trace id
that nobody has to store."""

from __future__ import annotations

import hashlib
import random


def trace_id(saga_id: str) -> str:
    """32 hex characters, the same for every call and log line of one saga."""
    return hashlib.sha256(saga_id.encode("utf-8")).hexdigest()[:32]


def traceparent(saga_id: str) -> str:
    """The ``traceparent`` header of one call: the saga's trace id, a fresh span id, sampled."""
    # A span id only has to be unique, not secret: the process's PRNG (seeded from the OS, and again
    # in each forked worker) saves a system call per call. All zeros is not a valid span id.
    return f"00-{trace_id(saga_id)}-{random.getrandbits(64) or 1:016x}-01"
