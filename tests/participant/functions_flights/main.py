"""A participant deployed as one Cloud Function (functions-framework): one URL for execute and compensate
(``X-Saga-Action`` tells them apart) and ``GET /_saga/effects``. Its settings come from the environment,
read once: ``FLIGHTS_ORIGIN`` (the token audience), ``FLIGHTS_SERVICE_ACCOUNT``, ``FLIGHTS_CERTS_URL``,
``FLIGHTS_BARRIER_DB`` (a SQLite file)."""

from __future__ import annotations

import os

import flask
import functions_framework
from saga_participant import Participant, SQLiteStore, TokenPolicy
from saga_participant.adapters.flask import dispatch

from tests.participant.apps import Flights

flights = Flights()
participant = Participant(
    auth=TokenPolicy(
        audiences=(os.environ["FLIGHTS_ORIGIN"],),
        service_accounts=(os.environ["FLIGHTS_SERVICE_ACCOUNT"],),
        certs_url=os.environ["FLIGHTS_CERTS_URL"],
    ),
    store=SQLiteStore(os.environ["FLIGHTS_BARRIER_DB"]),
    effects_endpoint=True,
)
participant.execute(flights.book)
participant.compensate(flights.cancel)


@functions_framework.http
def flights_participant(request: flask.Request) -> flask.Response:
    return dispatch(participant, request)
