"""The three trip-booking services and the business decision for one call.

Each service has one execute endpoint that creates a resource and one compensate endpoint that undoes it:

| service | execute | compensate | output id |
|---|---|---|---|
| flight | ``POST /flight/book`` | ``POST /flight/cancel`` | ``booking_id`` |
| hotel | ``POST /hotel/reserve`` | ``POST /hotel/release`` | ``reservation_id`` |
| payment | ``POST /payment/charge`` | ``POST /payment/refund`` | ``charge_id`` |

A compensation names what to undo with the output id in its payload (usually a
``{"$ref": "steps.<step>.output.<id>"}`` resolved by the step executor); without one, it undoes what the
same saga step executed.

An execute payload may ask for a large output (to show the saga's state budget): ``"output_padding": n``
(an integer, 0..``MAX_OUTPUT_PADDING``) adds a ``padding`` field of n ``x`` characters to the output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from examples.participants.state import Action, Answer, Ledger, Resource, resource_id

# The largest ``output_padding`` an execute payload may ask for (characters).
MAX_OUTPUT_PADDING = 1024 * 1024


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    execute_path: str
    compensate_path: str
    id_field: str
    id_prefix: str
    done: str
    undone: str
    # Payload fields copied into the execute output (besides the id and status).
    echoed: tuple[str, ...] = ()
    requires_api_key: bool = False

    def action_of(self, path: str) -> Action | None:
        if path == self.execute_path:
            return "execute"
        if path == self.compensate_path:
            return "compensate"
        return None


SERVICES: dict[str, ServiceSpec] = {
    "flight": ServiceSpec(
        name="flight",
        execute_path="/flight/book",
        compensate_path="/flight/cancel",
        id_field="booking_id",
        id_prefix="FL",
        done="booked",
        undone="cancelled",
        echoed=("from", "to", "date"),
    ),
    "hotel": ServiceSpec(
        name="hotel",
        execute_path="/hotel/reserve",
        compensate_path="/hotel/release",
        id_field="reservation_id",
        id_prefix="HT",
        done="reserved",
        undone="released",
        echoed=("city", "nights"),
    ),
    "payment": ServiceSpec(
        name="payment",
        execute_path="/payment/charge",
        compensate_path="/payment/refund",
        id_field="charge_id",
        id_prefix="CH",
        done="charged",
        undone="refunded",
        echoed=("amount", "currency"),
        requires_api_key=True,
    ),
}


@dataclass(frozen=True)
class Decision:
    answer: Answer
    effect: bool
    outcome: str
    # The resource created or undone (or found already undone).
    resource_id: str | None = None


def _failure(status: int, error: str, message: str) -> Answer:
    return Answer(status, {"error": error, "message": message})


def validate(spec: ServiceSpec, action: Action, payload: dict[str, Any]) -> Answer | None:
    """A 422 for a payload the business cannot accept, else None."""
    if spec.name == "payment" and action == "execute":
        amount = payload.get("amount")
        if not isinstance(amount, int | float) or isinstance(amount, bool) or amount <= 0:
            return _failure(422, "INVALID", "amount must be a positive number")
    return None


def decide(
    spec: ServiceSpec,
    ledger: Ledger,
    *,
    action: Action,
    pair: str,
    idempotency_key: str,
    saga_id: str | None,
    step: str | None,
    payload: dict[str, Any],
    connection: Any = None,
) -> Decision:
    """The business effect of a call the barrier let through (``pipeline.py`` runs it inside
    ``saga_participant.Barrier.run``): the barrier has already answered replays, null compensations and
    executes that come after their compensation. Synchronous on purpose (see state.py). ``connection``:
    the barrier transaction's, on which the ledger's book writes."""
    book = ledger.book
    if action == "execute":
        invalid = validate(spec, action, payload)
        if invalid is not None:
            return Decision(invalid, False, "invalid payload")
        resource = Resource(
            id=resource_id(spec.id_prefix, idempotency_key),
            status=spec.done,
            saga_id=saga_id,
            step=step,
            payload={k: v for k, v in payload.items() if k != "simulate"},
        )
        book.create(pair, resource, connection)
        return Decision(Answer(200, _output(spec, resource)), True, spec.done, resource.id)

    named = payload.get(spec.id_field)
    target = book.resource(named, connection) if isinstance(named, str) else None
    if target is None:
        created = book.created_by(pair, connection)
        target = None if created is None else book.resource(created, connection)
    if target is None:
        return Decision(
            Answer(
                200, {spec.id_field: named if isinstance(named, str) else None, "status": "nothing_to_undo"}
            ),
            effect=False,
            outcome="null compensation",
        )
    if target.status == spec.undone:
        return Decision(
            Answer(200, {spec.id_field: target.id, "status": spec.undone}),
            False,
            f"already {spec.undone}",
            target.id,
        )
    book.set_status(target.id, spec.undone, connection)
    return Decision(
        Answer(200, {spec.id_field: target.id, "status": spec.undone}), True, spec.undone, target.id
    )


def _output(spec: ServiceSpec, resource: Resource) -> dict[str, Any]:
    output: dict[str, Any] = {spec.id_field: resource.id, "status": spec.done}
    for name in spec.echoed:
        if name in resource.payload:
            output[name] = resource.payload[name]
    padding = resource.payload.get("output_padding")
    if isinstance(padding, int) and not isinstance(padding, bool) and 0 < padding <= MAX_OUTPUT_PADDING:
        output["padding"] = "x" * padding
    return output
