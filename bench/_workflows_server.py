"""The Workflows service alone, in its own process, for the scale benchmark (so its peak memory is its own).

Prints one JSON line ``{"grpc": ..., "http": ..., "token": ...}`` when ready (``token`` is an OAuth2 access
token of this process's authority, for the callback endpoints), then each ``sys.log`` text of an execution
as ``LOG <text>``; stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sys

from localcloud.config import LocalCloudConfig
from localcloud.runtime import Context, stop_on_signals
from localcloud.workflows.service.server import start


class _Lines(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            entry = json.loads(record.getMessage())
        except ValueError:
            return
        message = entry.get("message")
        if isinstance(message, str) and message:
            sys.stdout.write(f"LOG {message}\n")


async def _serve() -> None:
    config = dataclasses.replace(
        LocalCloudConfig.from_env({}), workflows="127.0.0.1:0", workflows_http="127.0.0.1:0"
    )
    stop = stop_on_signals()
    ctx = Context(config=config)
    service = await start(ctx, internal_url_prefixes=())
    token = ctx.authority.mint_access_token().token
    grpc_port = service.server.bound_port
    print(json.dumps({"grpc": f"127.0.0.1:{grpc_port}", "http": service.http_address, "token": token}))
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await service.stop()


def main() -> None:
    executions = logging.getLogger("localcloud.workflows.executions")
    executions.setLevel(logging.INFO)
    executions.addHandler(_Lines())
    executions.propagate = False
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(_serve())


if __name__ == "__main__":
    main()
