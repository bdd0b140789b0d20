"""The demo participants as Cloud Functions on functions-framework (Flask): one HTTP function per
service, serving every URL of that service (business endpoints, ``/_saga/effects``, ``/_control/*``)
through the SDK's Flask adapter and the framework-neutral pipeline (``pipeline.py``)::

    PAYMENT_API_KEY=... functions-framework --source examples/participants/functions.py \\
        --target payment --port 9003

(with the folder that holds ``examples`` on ``PYTHONPATH``; ``python -m examples.participants
--framework functions-framework`` runs exactly this). Settings come from the environment, read once, when
the function first runs: ``OIDC_CERTS_URL`` (default: Google's certificates), ``PAYMENT_API_KEY`` (payment
only), ``PARTICIPANT_AUDIENCES`` (comma-separated token audiences; default: the loopback origin of
``HOST``/``PORT``), ``PARTICIPANT_HANG_SECONDS``, ``PARTICIPANT_STATE_DIR`` (where the state is kept
across restarts; unset: in memory). Each process keeps its participant's state in memory by default:
functions-framework's gunicorn runs one worker with ``THREADS`` threads, which is what the state needs
(several workers or instances would each keep their own); a HANG holds a thread until it ends, so
``python -m examples.participants`` asks for 64.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping

import flask
import functions_framework
from saga_participant.adapters import flask as saga_flask

from examples.participants.pipeline import (
    API_KEY_ENV,
    AUDIENCES_ENV,
    CERTS_URL_ENV,
    DEFAULT_HANG_SECONDS,
    GOOGLE_CERTS_URL,
    HANG_SECONDS_ENV,
    STATE_DIR_ENV,
    Participant,
    ParticipantConfig,
    configure_logging,
    loopback_audiences,
    new_ledger,
)

_participants: dict[str, Participant] = {}
_lock = threading.Lock()


def config_from_env(service: str, env: Mapping[str, str]) -> ParticipantConfig:
    """The settings of ``service``'s function (see the module docstring)."""
    audiences = tuple(a.strip() for a in env.get(AUDIENCES_ENV, "").split(",") if a.strip())
    if not audiences:
        audiences = loopback_audiences(env.get("HOST") or "127.0.0.1", int(env.get("PORT") or 8080))
    hang = env.get(HANG_SECONDS_ENV)
    return ParticipantConfig(
        service=service,
        audiences=audiences,
        certs_url=env.get(CERTS_URL_ENV) or GOOGLE_CERTS_URL,
        api_key=(env.get(API_KEY_ENV) or None) if service == "payment" else None,
        hang_seconds=float(hang) if hang else DEFAULT_HANG_SECONDS,
        state_dir=env.get(STATE_DIR_ENV) or None,
    )


def participant_of(service: str) -> Participant:
    """The one participant of ``service`` in this process, built on first use."""
    with _lock:
        if service not in _participants:
            config = config_from_env(service, os.environ)
            _participants[service] = Participant(config, new_ledger(config))
        return _participants[service]


def _serve(service: str, request: flask.Request) -> flask.Response:
    response = participant_of(service).serve(saga_flask.to_request(request))
    return saga_flask.to_response(response)


@functions_framework.http
def flight(request: flask.Request) -> flask.Response:
    return _serve("flight", request)


@functions_framework.http
def hotel(request: flask.Request) -> flask.Response:
    return _serve("hotel", request)


@functions_framework.http
def payment(request: flask.Request) -> flask.Response:
    return _serve("payment", request)


configure_logging()
