"""The control endpoints of a demo participant (``/_control/<name>``), framework-neutral. No
authentication: the services listen on loopback, and these exist for failure injection and for tests to
read what the participant saw.

| endpoint | answer |
|---|---|
| ``POST /_control/next`` ``{"result", "count"=1, "action"?, "status"?, "reason"?, "seconds"?, "after_effect"?}`` | arms the failure switch: ``{"armed": [...]}`` |
| ``GET /_control/calls`` | every business call seen, in arrival order (``state.CallRecord``) |
| ``GET /_control/state`` | resources, executed steps, armed rules |
| ``GET /_control/journal`` | every business decision, and every execute refused after its compensation, in order (``state.JournalEntry``): kept with the state |
| ``POST /_control/reset`` | forgets everything (calls, resources, barrier, switch) |
| ``GET /_control/health`` | the service and its token audiences |
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from saga_participant import HttpRequest

from examples.participants.state import ACTIONS, Answer, InjectionError, parse_injection

if TYPE_CHECKING:
    from examples.participants.pipeline import Participant


def _bad(message: str) -> Answer:
    return Answer(400, {"error": "INVALID_ARGUMENT", "message": message})


def _next(participant: Participant, request: HttpRequest) -> Answer:
    try:
        body = json.loads(request.body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _bad("the body must be JSON")
    if not isinstance(body, dict):
        return _bad("the body must be a JSON object")
    switch = participant.ledger.switch
    count = body.get("count", 1)
    action = body.get("action")
    try:
        if not isinstance(count, int) or isinstance(count, bool):
            raise InjectionError("count must be an integer")
        if action is not None and action not in ACTIONS:
            raise InjectionError("action must be 'execute' or 'compensate'")
        switch.arm(parse_injection(body), count, action)
    except InjectionError as error:
        return _bad(str(error))
    return Answer(200, {"armed": switch.pending()})


def _calls(participant: Participant, request: HttpRequest) -> Any:
    return [record.to_dict() for record in list(participant.ledger.calls)]


def _state(participant: Participant, request: HttpRequest) -> Any:
    return {"service": participant.config.service, **participant.ledger.snapshot()}


def _journal(participant: Participant, request: HttpRequest) -> Any:
    return [entry.to_dict() for entry in participant.ledger.book.entries()]


def _reset(participant: Participant, request: HttpRequest) -> Any:
    participant.ledger.reset()
    return {"reset": True}


def _health(participant: Participant, request: HttpRequest) -> Any:
    return {"service": participant.config.service, "audiences": list(participant.config.audiences)}


Endpoint = Callable[["Participant", HttpRequest], Any]
ENDPOINTS: dict[str, tuple[str, Endpoint]] = {
    "next": ("POST", _next),
    "calls": ("GET", _calls),
    "state": ("GET", _state),
    "journal": ("GET", _journal),
    "reset": ("POST", _reset),
    "health": ("GET", _health),
}


def control(participant: Participant, name: str, request: HttpRequest) -> Answer:
    """The answer of ``/_control/<name>``: 404 for an unknown name, 405 for the wrong method."""
    if name not in ENDPOINTS:
        return Answer(404, {"error": "NOT_FOUND", "message": f"no control endpoint {name!r}"})
    method, endpoint = ENDPOINTS[name]
    if request.method != method:
        return Answer(405, {"error": "METHOD_NOT_ALLOWED", "message": f"/_control/{name} takes {method}"})
    answer = endpoint(participant, request)
    return answer if isinstance(answer, Answer) else Answer(200, answer)
