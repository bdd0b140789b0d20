"""The local cloud: emulators of Pub/Sub, Cloud Tasks, Secret Manager, the metadata server and Cloud
Workflows that speak the real Google APIs, so the unmodified ``google-cloud-*`` clients, ``google-auth``
and ``functions-framework`` run against them on one machine.

Every emulator splits its *state* (plain objects you can build in a test), its *API surface* (handlers
named after the real RPCs) and its *transport* (a thin gRPC or HTTP shell). All of them run on one asyncio
event loop; ``python -m localcloud serve`` starts them together.
"""
