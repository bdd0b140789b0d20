"""``python -m localcloud.pubsub [HOST:PORT]``: serve only the Pub/Sub emulator (default: $PUBSUB_EMULATOR_HOST).
Prints ``pubsub ready: HOST:PORT`` once it accepts connections."""

from __future__ import annotations

import sys

from localcloud.pubsub.server import start
from localcloud.runtime import serve_one


def main(argv: list[str]) -> int:
    return serve_one(start, "pubsub", argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
