"""Emulator of Cloud Tasks v2 (gRPC ``google.cloud.tasks.v2.CloudTasks``) with HTTP targets: queues, named
and unnamed tasks with tombstones, and an event-driven dispatcher that follows the documented retry
schedule, rate limits, headers and OIDC/OAuth tokens of the real service."""
