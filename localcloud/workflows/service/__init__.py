"""The Workflows and Executions APIs around the engine: records, state, RPCs, callbacks, connectors."""
