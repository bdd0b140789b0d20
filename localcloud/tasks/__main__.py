"""``python -m localcloud.tasks [HOST:PORT]``: serve only the Cloud Tasks emulator (default: $CLOUD_TASKS_EMULATOR_HOST).
Prints ``tasks ready: HOST:PORT`` once it accepts connections."""

from __future__ import annotations

import sys

from localcloud.runtime import serve_one
from localcloud.tasks.server import start


def main(argv: list[str]) -> int:
    return serve_one(start, "tasks", argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
