"""Billable step counting (https://cloud.google.com/workflows/pricing), under two readings of the rule.

Google's English page counts "any step that executes successfully", "fails" or "is retried", and lists
"assigning and evaluating variables" among the kinds of internal steps; it does not say whether an
``assign`` step of several entries is one step or several. The Japanese edition
(https://cloud.google.com/workflows/pricing?hl=ja, read 2026-12-06) says it outright: a billable step is
not necessarily a workflow step, one workflow step may hold several billable steps, each call request is
one (HTTP requests, built-in functions such as ``sys.sleep``, subworkflow calls), each retry of a call is
one, and each individual variable assignment is one, "whether done in the same assign workflow step or in
separate assign workflow steps" (個々の変数割り当ては、同じ assign ワークフロー ステップ、別個の assign
ワークフロー ステップのどちらで行われる場合でも、1 つの課金対象ステップです). Both readings are counted,
internal and external apart:

PER STEP (``internal``, ``external``; the meter's original reading, kept exactly):
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

PER ASSIGNMENT (``assignment_internal``, ``assignment_external``; the Japanese page's words taken as
written): everything the per-step reading counts, except that
- an ``assign`` step counts one INTERNAL step per entry it runs instead of one for the step (an entry
  whose expression fails still counts, as a failed step does), and so does the inline ``assign`` of a
  ``switch`` condition, which the per-step reading folds into the switch;
- a ``call`` with ``result:`` counts one more INTERNAL step when the result is stored (the assignment);
- the inline ``call`` of a ``switch`` condition counts as the call request it is (internal or external
  as above), plus its ``result:``.
Not counted as assignments: the ``as`` variable of an ``except``, a ``for`` loop's value and index, and
a subworkflow's parameters (the page names only assignments, calls and retries; these bind names, they
are not assignments written in the source). So the per-assignment count is never below the per-step one,
and the external steps differ only by an inline external call in a condition.

The step limit (100,000 per execution) is checked against the per-step total.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StepMeter:
    internal: int = 0
    external: int = 0
    assignment_internal: int = 0
    assignment_external: int = 0
    current: tuple[str, str] | None = None  # (routine, step) most recently started

    @property
    def total(self) -> int:
        return self.internal + self.external

    @property
    def assignment_total(self) -> int:
        return self.assignment_internal + self.assignment_external

    def count(self, routine: str, step: str, *, external: bool = False, assign: bool = False) -> int:
        """Count one step under the per-step reading and return the new per-step total. Under the
        per-assignment reading the step counts one too, unless it is an ``assign`` step (``assign``),
        whose entries count one by one through ``assignment``."""
        if external:
            self.external += 1
        else:
            self.internal += 1
        if not assign:
            if external:
                self.assignment_external += 1
            else:
                self.assignment_internal += 1
        self.current = (routine, step)
        return self.internal + self.external

    def assignment(self) -> None:
        """One variable assignment (an ``assign`` entry, or a call's ``result:``): one internal step
        under the per-assignment reading only."""
        self.assignment_internal += 1

    def inline_call(self, *, external: bool) -> None:
        """A call written inline in a ``switch`` condition: part of the switch under the per-step reading,
        a call request of its own under the per-assignment reading."""
        if external:
            self.assignment_external += 1
        else:
            self.assignment_internal += 1

    def readings(self) -> dict[str, dict[str, int]]:
        """Both readings, as reported (admin page, outcome log line, ``workflows run --steps``)."""
        return {
            "per_step": {"internal": self.internal, "external": self.external, "total": self.total},
            "per_assignment": {
                "internal": self.assignment_internal,
                "external": self.assignment_external,
                "total": self.assignment_total,
            },
        }
