"""Emulator of Cloud Tasks v2 (gRPC ``google.cloud.tasks.v2.CloudTasks``), and v2beta3 over the same state
(``localcloud.tasks.v2beta3``), with HTTP targets: queues, named and unnamed tasks with tombstones,
queue-level routing (``localcloud.tasks.routing``), REST-only BufferTask (``localcloud.tasks.buffer``), and
an event-driven dispatcher that follows the documented retry schedule, rate limits, headers and OIDC/OAuth
tokens of the real service."""
