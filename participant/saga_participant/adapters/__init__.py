"""Thin adapters from web frameworks to ``saga_participant.core.Participant``: ``flask`` (also
functions-framework), ``starlette`` (also FastAPI) and ``aiohttp``. Each imports only its framework."""
