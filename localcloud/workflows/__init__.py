"""A Cloud Workflows engine: an interpreter of the Workflows language (lexer → Pratt parser → typed AST →
evaluator, never ``eval``) behind the real Workflows and Executions gRPC APIs, with HTTP callback
endpoints, connectors routed to the local emulators, and per-execution billable step counts."""
