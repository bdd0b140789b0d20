"""Billable step counting (https://cloud.google.com/workflows/pricing).

Rules implemented:
- every executed step counts once: assign, call, switch, for, parallel, raise, return, a step that only
  jumps, a ``steps`` block, and a ``try`` block with nested ``steps``; a ``try`` whose body is a single
  inline step counts that step only (it is one step in the source);
- a ``switch`` counts once; a condition's inline body (assign, call, return, raise) is part of it and
  not counted again, while a condition's nested ``steps`` count one by one;
- each retry re-runs the whole ``try`` block, so every attempt counts its steps again;
- loop iterations and parallel branches count the steps they run;
- a subworkflow call costs the calling step plus the steps the subworkflow runs (expression calls too);
- a step is EXTERNAL when it is a ``call`` of ``http.*`` to a URL for which ``host.is_internal_url`` is
  false, or a call of ``events.await_callback``; every other step (stdlib, connectors, callbacks endpoint
  creation, calls to Google APIs, Cloud Run and Cloud Functions) is INTERNAL.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StepMeter:
    internal: int = 0
    external: int = 0
    current: tuple[str, str] | None = None  # (routine, step) most recently started

    @property
    def total(self) -> int:
        return self.internal + self.external

    def count(self, routine: str, step: str, *, external: bool = False) -> int:
        """Count one step and return the new total."""
        if external:
            self.external += 1
        else:
            self.internal += 1
        self.current = (routine, step)
        return self.internal + self.external
