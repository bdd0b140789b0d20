"""Runs a workflow: YAML to AST, deploy-time checks, the interpreter, the standard library, metering."""
