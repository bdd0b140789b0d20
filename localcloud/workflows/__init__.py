"""A Cloud Workflows engine, in three layers.

``lang/``: the Workflows language (lexer, Pratt parser, typed AST, values, error tags). ``engine/``: YAML to
AST, the deploy-time checks as one pass over the finished AST, expressions compiled once at load, the
interpreter, the standard library and the billable-step meter. ``service/``: the real Workflows and Executions
gRPC APIs around the engine, HTTP callback endpoints and admin pages, and connectors routed to the local
emulators. Never ``eval``.
"""
